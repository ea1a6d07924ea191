"""plugins/module_utils/agent_env.py: grammar, edits, booleans, masking and the backup manifest."""

from __future__ import annotations

import datetime
import hashlib
import json

import pytest
from ansible_collections.fleetwave.rollout.plugins.module_utils.agent_env import (
    FLAG_KEY, MASK, EnvFile, EnvFileError, add_entry, backups_for, empty_manifest, load_manifest, make_entry,
    mask_values, newest_backup, parse_bool, render_manifest, validate_values,
)

pytestmark = pytest.mark.unit

PATH = "/etc/agents/tdd-expert.env"
SAMPLE = """\
# tdd-expert, managed by fleetwave
AGENT_NAME=tdd-expert

; legacy comment style
AGENT_ID='01936faa-f4cb-7000-8000-00000000000a'
NATS_URL = "nats://127.0.0.1:4222"
ENABLE_UNIFIED_SUBJECTS=false
"""


def at(second):
    return datetime.datetime(2025, 1, 14, 9, 30, second, 123456, tzinfo=datetime.timezone.utc)


def test_round_trip_is_byte_identical():
    assert EnvFile.parse(SAMPLE, PATH).render() == SAMPLE


def test_values_are_unquoted():
    values = EnvFile.parse(SAMPLE + 'GREETING="say \\"hi\\" \\\\o/"\n', PATH).values
    assert values["AGENT_ID"] == "01936faa-f4cb-7000-8000-00000000000a"
    assert values["NATS_URL"] == "nats://127.0.0.1:4222"
    assert values["GREETING"] == 'say "hi" \\o/'


def test_update_keeps_comments_order_and_untouched_lines_and_appends_new_keys():
    env = EnvFile.parse(SAMPLE, PATH)
    changed = env.update({FLAG_KEY: "true", "AGENT_ID": "01936faa-f4cb-7000-8000-00000000000a", "NEW_KEY": "x y"})
    assert changed == [FLAG_KEY, "NEW_KEY"]
    assert env.render() == SAMPLE.replace("SUBJECTS=false", "SUBJECTS=true") + 'NEW_KEY="x y"\n'


def test_update_keeps_a_value_single_quoted():
    env = EnvFile.parse("AGENT_ID='old'\n", PATH)
    env.update({"AGENT_ID": "new"})
    assert env.render() == "AGENT_ID='new'\n"


def test_rendered_quoting_parses_back_to_the_same_values():
    odd = {"A": "", "B": "has space", "C": 'quote " and \\ backslash', "D": "#not-a-comment", "E": "$HOME"}
    env = EnvFile(PATH)
    env.update(odd)
    assert EnvFile.parse(env.render(), PATH).values == odd


def test_only_missing_does_not_override():
    env = EnvFile.parse(SAMPLE, PATH)
    assert env.update({FLAG_KEY: "true", "EXTRA": "1"}, only_missing=True) == ["EXTRA"]
    assert env.values[FLAG_KEY] == "false"


def test_crlf_lines_round_trip():
    text = "A=1\r\nB=2\r\n"
    env = EnvFile.parse(text, PATH)
    assert env.values == {"A": "1", "B": "2"}
    assert env.render() == text


@pytest.mark.parametrize("text, line, reason", [
    ("A=1\nJUST_A_WORD\n", 2, "expected KEY=VALUE"),
    ("1BAD=x\n", 1, "not a valid key"),
    ("A-B=x\n", 1, "not a valid key"),
    (FLAG_KEY + "=false\nA=1\n" + FLAG_KEY + "=true\n", 3,
     "'ENABLE_UNIFIED_SUBJECTS' is defined twice (first on line 1)"),
    ('A=1\n\nB="open\n', 3, 'unterminated " quote'),
    ("A='open\n", 1, "unterminated ' quote"),
    ("export A=1\n", 1, "'export' is shell syntax"),
])
def test_malformed_lines_name_path_and_line(text, line, reason):
    with pytest.raises(EnvFileError) as exc:
        EnvFile.parse(text, PATH)
    assert (exc.value.path, exc.value.line) == (PATH, line)
    assert str(exc.value).startswith("%s line %d: " % (PATH, line))
    assert reason in str(exc.value)


def test_duplicate_message_matches_the_contract():
    with pytest.raises(EnvFileError, match=r"^/etc/agents/tdd-expert\.env line 3: 'ENABLE_UNIFIED_SUBJECTS' "
                                           r"is defined twice \(first on line 1\)$"):
        EnvFile.parse("%s=false\nA=1\n%s=true\n" % (FLAG_KEY, FLAG_KEY), PATH)


def test_invalid_utf8_names_the_file():
    with pytest.raises(EnvFileError, match="tdd-expert.env line 1: not valid UTF-8"):
        EnvFile.from_bytes(b"A=\xff\n", PATH)


@pytest.mark.parametrize("raw, expected", [
    ("true", True), ("TRUE", True), ("1", True), ("Yes", True),
    ("false", False), ("False", False), ("0", False), ("NO", False),
])
def test_parse_bool(raw, expected):
    assert parse_bool(raw) is expected


def test_flag_reads_boolean_or_none():
    assert EnvFile.parse("%s=Yes\n" % FLAG_KEY, PATH).flag() is True
    assert EnvFile.parse("A=1\n", PATH).flag() is None


def test_flag_that_is_not_boolean_names_file_and_line():
    with pytest.raises(EnvFileError, match=r"tdd-expert\.env line 2: ENABLE_UNIFIED_SUBJECTS='maybe' is not a boolean"):
        EnvFile.parse("A=1\n%s=maybe\n" % FLAG_KEY, PATH).flag()


def test_validate_values_normalises_yaml_booleans_and_rejects_bad_flag():
    assert validate_values({FLAG_KEY: True, "N": 3}) == ({FLAG_KEY: "true", "N": "3"}, None)
    assert "is not a boolean" in validate_values({FLAG_KEY: "maybe"})[1]
    assert "spans several lines" in validate_values({"A": "x\ny"})[1]
    assert "not a valid key" in validate_values({"bad key": "x"})[1]


def test_mask_values_hides_pattern_and_named_secrets():
    values = {"NATS_PASSWORD": "p", "api_token": "t", "NATS_NKEY": "n", "NKEY_SEED": "s", "NATS_CREDS": "c",
              "CLIENT_SECRET": "x", "PLAIN": "v", "CERT_BLOB": "b"}
    masked = mask_values(values, {"CERT_BLOB"})
    assert masked == dict.fromkeys(values, MASK) | {"PLAIN": "v"}


def test_masked_render_hides_secret_values():
    env = EnvFile.parse("NATS_PASSWORD='hunter2'\nPLAIN=1\n", PATH)
    assert env.render(set()) == "NATS_PASSWORD=%s\nPLAIN=1\n" % MASK


def test_missing_manifest_is_empty(tmp_path):
    assert load_manifest(str(tmp_path / "nope")) == empty_manifest()


@pytest.mark.parametrize("content", ["{not json", "[]", '{"version": 1, "backups": [{"path": "x"}]}',
                                     '{"version": 2, "backups": []}'])
def test_malformed_manifest_names_the_file(tmp_path, content):
    (tmp_path / "manifest.json").write_text(content)
    with pytest.raises(EnvFileError, match=str(tmp_path / "manifest.json")):
        load_manifest(str(tmp_path))


def test_manifest_entry_fields():
    entry = make_entry(PATH, "/b/tdd-expert.env.x", b"A=1\n", at(0), "wave2/phase2", "false")
    assert entry == {
        "path": PATH, "backup": "/b/tdd-expert.env.x", "label": "wave2/phase2", "flag": "false",
        "sha256": hashlib.sha256(b"A=1\n").hexdigest(),
        "created": "2025-01-14T09:30:00.123456Z",
    }


def test_newest_backup_skips_pre_restore_and_other_paths():
    manifest = empty_manifest()
    for second, path, label in [(1, PATH, "wave2/phase1"), (2, PATH, "wave2/phase2"), (3, "/other.env", "x"),
                                (4, PATH, "pre-restore")]:
        manifest = add_entry(manifest, make_entry(path, "b%d" % second, b"", at(second), label))
    assert [b["backup"] for b in backups_for(manifest, PATH)] == ["b4", "b2", "b1"]
    assert newest_backup(manifest, PATH)["backup"] == "b2"
    assert newest_backup(manifest, "/nothing.env") is None


def test_add_entry_leaves_the_input_alone_and_renders_json():
    manifest = empty_manifest()
    updated = add_entry(manifest, make_entry(PATH, "b", b"", at(0)))
    assert manifest["backups"] == [] and len(updated["backups"]) == 1
    assert json.loads(render_manifest(updated)) == updated
