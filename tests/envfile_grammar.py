"""systemd's EnvironmentFile= grammar as a table, shared by the unit test of our parser
(tests/unit/test_agent_env_grammar.py) and the check against a real systemd
(tests/integration/test_agent_env_systemd.py), so both prove the same thing.

Rules from systemd.exec(5) "EnvironmentFile=" and src/basic/env-file.c, confirmed on systemd 252.

READ: (id, file bytes, values systemd sets). Our parser must give exactly these values.
REFUSED: (id, file bytes, words of our error, what systemd does). We refuse these with a clear
error; the last field is "refuses" when systemd refuses the whole file too (the unit does not
start), the values systemd would set when it reads the file differently from how it looks, or
None when that differs between systemd versions.
"""

FLAG = "ENABLE_UNIFIED_SUBJECTS"

READ = [
    ("cr_ends_a_line", b"FOO=1\rENABLE_UNIFIED_SUBJECTS=true\n", {"FOO": "1", FLAG: "true"}),
    ("crlf_line_endings", b"A=1\r\nB=2\r\n", {"A": "1", "B": "2"}),
    ("trailing_backslash_continues_the_line", b"A=foo\\\nB=2\n", {"A": "fooB=2"}),
    ("backslash_at_end_of_file_is_dropped", b"A=x\\", {"A": "x"}),
    ("no_newline_at_end_of_file", b"A=1\nB=2", {"A": "1", "B": "2"}),
    ("double_quotes_keep_an_unknown_escape", b'A="x\\q"\n', {"A": "x\\q"}),
    ("double_quotes_unescape_quote_backslash_backtick_dollar", b'A="a\\"b\\\\c\\$d\\`e"\n',
     {"A": 'a"b\\c$d`e'}),
    ("double_quotes_backslash_newline_continues", b'A="ab\\\ncd"\n', {"A": "abcd"}),
    ("double_quotes_keep_a_newline", b'A="ab\ncd"\nB=1\n', {"A": "ab\ncd", "B": "1"}),
    ("double_quotes_keep_a_carriage_return", b'A="x\ry"\nB=2\n', {"A": "x\ry", "B": "2"}),
    ("double_quotes_keep_a_tab", b'A="x\ty"\n', {"A": "x\ty"}),
    ("single_quotes_are_literal", b"A='a\\b'\n", {"A": "a\\b"}),
    ("quoted_parts_concatenate", b"A=\"x\"y'z' \n", {"A": "xy'z'"}),
    ("quote_inside_a_bare_value_is_literal", b'A=x "y"\n', {"A": 'x "y"'}),
    ("blanks_around_key_and_value_are_dropped", b"A=  foo bar  \t\n  B = 2\n", {"A": "foo bar", "B": "2"}),
    ("bare_backslash_escapes_the_next_character", b"A=foo\\ \nB=a\\qb\n", {"A": "foo ", "B": "aqb"}),
    ("comments_hash_and_semicolon_first_on_a_line", b"; c\n  # d\nA=1 # not a comment\n",
     {"A": "1 # not a comment"}),
    ("empty_values", b"A=\nB=\"\"\nC=''\n", {"A": "", "B": "", "C": ""}),
    ("utf8_value", "A=ünï©ødé\n".encode("utf-8"), {"A": "ünï©ødé"}),
]

REFUSED = [
    ("nul_byte", b"A=x\x00y\nB=2\n", "NUL", "refuses"),
    ("invalid_utf8", b"A=\xff\nB=2\n", "not valid UTF-8", "refuses"),
    # systemd < 254 continues the comment onto the next line, 254+ does not.
    ("comment_ending_in_backslash", b"#c\\\nA=1\nB=2\n", "comment ends with a backslash", None),
    ("line_without_equals", b"JUNK\nB=2\n", "expected KEY=VALUE", {"B": "2"}),
    ("invalid_key", b"A-B=1\nC=2\n", "not a valid key", {"C": "2"}),
    ("duplicate_key", b"A=1\nA=2\n", "defined twice", {"A": "2"}),
    ("quote_never_closed", b'A="abc\nB=2\n', "unterminated", {"A": "abc\nB=2\n"}),
    ("byte_order_mark", b"\xef\xbb\xbfA=1\n", "byte-order mark", {}),
    ("export_prefix", b"export A=1\n", "'export'", {}),
]

# Values our writer must render so that systemd reads back exactly the same string.
WRITABLE = ["", "plain", "has space", 'q"uote', "back\\slash", "x\\q", "$NOT_EXPANDED", "`not run`", "#hash",
            "'single'", "tab\there", "trailing ", " leading", "ünï©ødé", "a=b", "ends\\", "nats://u:p@h:4222"]
# Values our writer must refuse: systemd refuses the file (NUL) or they break the one-line-per-key rule.
UNWRITABLE = ["x\x00y", "a\nb", "a\rb", "bell\x07", "del\x7f"]
