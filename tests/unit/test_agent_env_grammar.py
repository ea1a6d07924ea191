"""One env-file grammar, systemd's, for reading and writing (issue 8, "Grammar" finding).

The table lives in tests/envfile_grammar.py; tests/integration/test_agent_env_systemd.py checks
the same table against a real systemd.
"""

from __future__ import annotations

import pytest
from ansible_collections.fleetwave.rollout.plugins.module_utils.agent_env import EnvFile, EnvFileError, validate_values

from tests.envfile_grammar import READ, REFUSED, UNWRITABLE, WRITABLE

pytestmark = pytest.mark.unit

PATH = "/etc/agents/tdd-expert.env"


@pytest.mark.parametrize("data, values", [c[1:] for c in READ], ids=[c[0] for c in READ])
def test_grammar_reads_as_systemd_does(data, values):
    env = EnvFile.from_bytes(data, PATH)
    assert env.values == values
    assert env.render().encode("utf-8") == data  # untouched files come back byte-identical


@pytest.mark.parametrize("data, words", [c[1:3] for c in REFUSED], ids=[c[0] for c in REFUSED])
def test_grammar_refuses_with_file_and_line(data, words):
    with pytest.raises(EnvFileError, match=r"^/etc/agents/tdd-expert\.env line \d+: ") as e:
        EnvFile.from_bytes(data, PATH)
    assert words in str(e.value)


@pytest.mark.parametrize("value", WRITABLE)
def test_grammar_written_values_read_back_identical(value):
    env = EnvFile.parse("# header\nOTHER=1\n", PATH)
    env.update({"A": value})
    assert EnvFile.parse(env.render(), PATH).values == {"OTHER": "1", "A": value}


@pytest.mark.parametrize("value", UNWRITABLE, ids=repr)
def test_grammar_unwritable_values_refused_without_echoing_them(value):
    checked, err = validate_values({"NATS_PASSWORD": value})
    assert checked is None and "NATS_PASSWORD" in err and value not in err


def test_grammar_finding_cr_sets_the_flag_for_systemd_and_for_us():
    """Finding: `FOO=1\\rENABLE_UNIFIED_SUBJECTS=true` sets the flag for systemd, was read as absent."""
    assert EnvFile.parse("FOO=1\rENABLE_UNIFIED_SUBJECTS=true\n", PATH).flag() is True


def test_grammar_finding_trailing_backslash_joins_the_next_line():
    assert EnvFile.parse("A=foo\\\nB=2\n", PATH).values == {"A": "fooB=2"}


def test_grammar_finding_unknown_escape_in_double_quotes_keeps_its_backslash():
    assert EnvFile.parse('A="\\q"\n', PATH).values == {"A": "\\q"}


def test_grammar_finding_nul_in_a_value_is_refused():
    """Finding: NUL was accepted in a value; systemd then refuses the whole file."""
    checked, err = validate_values({"A": "x\x00y"})
    assert checked is None and "U+0000" in err and "NUL" in err
    with pytest.raises(EnvFileError, match="line 2: contains a NUL"):
        EnvFile.parse("B=1\nA=x\x00y\n", PATH)


def test_grammar_appending_after_a_last_line_without_newline():
    env = EnvFile.parse("# c\nA=x\\", PATH)
    env.update({"B": "2"})
    assert EnvFile.parse(env.render(), PATH).values == {"A": "x", "B": "2"}


def test_grammar_edited_line_keeps_its_cr_ending():
    env = EnvFile.parse("FOO=1\rENABLE_UNIFIED_SUBJECTS=true\rBAR=2\n", PATH)
    env.update({"ENABLE_UNIFIED_SUBJECTS": "false"})
    assert env.render() == "FOO=1\rENABLE_UNIFIED_SUBJECTS=false\rBAR=2\n"
