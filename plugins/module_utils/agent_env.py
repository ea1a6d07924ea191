# -*- coding: utf-8 -*-
"""Env-file logic shared by the agent_env and agent_env_info modules.

Agents are systemd units reading ``/etc/agents/<name>.env`` through ``EnvironmentFile=``.
Everything that reads, edits, masks or backs up such a file lives here, so the two modules and
the unit tests agree on one grammar. Standard library only: this runs on the targets.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import os
import re
import stat
import tempfile

FLAG_KEY = "ENABLE_UNIFIED_SUBJECTS"
MASK = "********"
MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = 1
PRE_RESTORE_LABEL = "pre-restore"

KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
SECRET_KEY_RE = re.compile(r"PASSWORD|TOKEN|SECRET|CREDS|NKEY|KEY_SEED", re.IGNORECASE)
# Values made only of these characters are written bare; anything else is double-quoted.
_BARE_VALUE_RE = re.compile(r"[A-Za-z0-9_@%+=:,./-]*\Z")
_TRUE = frozenset(("true", "1", "yes"))
_FALSE = frozenset(("false", "0", "no"))


class EnvFileError(Exception):
    """A file that cannot be used as it is, located by path and (when known) 1-based line."""

    def __init__(self, path, reason, line=None):
        self.path, self.reason, self.line = path, reason, line
        where = path if line is None else "%s line %d" % (path, line)
        super().__init__("%s: %s" % (where, reason))


# --- masking -------------------------------------------------------------------------------------

def is_secret(key, secret_keys=()):
    return key in secret_keys or bool(SECRET_KEY_RE.search(key))


def mask_values(values, secret_keys=()):
    """Copy of ``values`` with every secret value replaced by ``MASK``."""
    return {k: MASK if is_secret(k, secret_keys) else v for k, v in values.items()}


# --- booleans ------------------------------------------------------------------------------------

def parse_bool(value, path="<value>", line=None, key=FLAG_KEY):
    lowered = str(value).strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise EnvFileError(path, "%s=%r is not a boolean (use true/false, 1/0 or yes/no)" % (key, value), line)


# --- parsing and rendering -----------------------------------------------------------------------

def _unquote(raw, path, lineno):
    """Value text after ``=`` -> (value, quote char or '')."""
    if not raw or raw[0] not in "'\"":
        return raw, ""
    quote = raw[0]
    chars, i = [], 1
    while i < len(raw):
        c = raw[i]
        if c == quote:
            if raw[i + 1:].strip():
                raise EnvFileError(path, "unexpected text after the closing %s quote" % quote, lineno)
            return "".join(chars), quote
        # Only double quotes take backslash escapes, as in systemd; single quotes are literal.
        if c == "\\" and quote == '"' and i + 1 < len(raw):
            i += 1
            c = raw[i]
        chars.append(c)
        i += 1
    raise EnvFileError(path, "unterminated %s quote" % quote, lineno)


def format_line(key, value, quote=""):
    """``KEY=VALUE``, quoted only when the value needs it (keeping a single-quote style if safe)."""
    if quote == "'" and "'" not in value:
        return "%s='%s'" % (key, value)
    if quote or not _BARE_VALUE_RE.match(value):
        return '%s="%s"' % (key, value.replace("\\", "\\\\").replace('"', '\\"'))
    return "%s=%s" % (key, value)


class _Entry:
    """One line: a key/value (``key`` set) or a blank/comment line kept verbatim."""

    __slots__ = ("key", "value", "quote", "text")

    def __init__(self, key=None, value=None, quote="", text=None):
        self.key, self.value, self.quote, self.text = key, value, quote, text

    def render(self, masked=False):
        if self.key is not None and masked:
            return "%s=%s" % (self.key, MASK)
        # text is None once the value has been edited; untouched lines come back byte-identical.
        return self.text if self.text is not None else format_line(self.key, self.value, self.quote)


class EnvFile:
    """An env file as an ordered list of lines that can be edited and rendered back."""

    def __init__(self, path, entries=None):
        self.path = path
        self.entries = entries or []

    @classmethod
    def parse(cls, text, path):
        entries, seen = [], {}
        # split("\n") rather than splitlines(): line numbers must match what editors and sed show,
        # and a CRLF line left untouched keeps its "\r" so it renders back byte-identical.
        lines = text.split("\n")
        if lines[-1] == "":
            lines.pop()
        for lineno, line in enumerate(lines, 1):
            stripped = line.strip()
            if not stripped or stripped[0] in "#;":
                entries.append(_Entry(text=line))
                continue
            if stripped.startswith("export "):
                raise EnvFileError(path, "'export' is shell syntax; EnvironmentFile= lines are KEY=VALUE", lineno)
            if "=" not in stripped:
                raise EnvFileError(path, "expected KEY=VALUE, found %r" % stripped, lineno)
            key, raw = stripped.split("=", 1)
            key = key.rstrip()
            if not KEY_RE.match(key):
                raise EnvFileError(path, "%r is not a valid key ([A-Za-z_][A-Za-z0-9_]*)" % key, lineno)
            if key in seen:
                raise EnvFileError(path, "%r is defined twice (first on line %d)" % (key, seen[key]), lineno)
            seen[key] = lineno
            value, quote = _unquote(raw.lstrip(), path, lineno)
            entries.append(_Entry(key, value, quote, line))
        return cls(path, entries)

    @classmethod
    def from_bytes(cls, data, path):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise EnvFileError(path, "not valid UTF-8 (byte %d)" % e.start)
        return cls.parse(text, path)

    @property
    def values(self):
        return {e.key: e.value for e in self.entries if e.key is not None}

    def line_of(self, key):
        return next((n for n, e in enumerate(self.entries, 1) if e.key == key), None)

    def flag(self):
        """ENABLE_UNIFIED_SUBJECTS as a bool, or None when the key is absent."""
        value = self.values.get(FLAG_KEY)
        return None if value is None else parse_bool(value, self.path, self.line_of(FLAG_KEY))

    def update(self, values, only_missing=False):
        """Set keys in place (new ones appended); returns the keys whose value changed."""
        index = {e.key: e for e in self.entries if e.key is not None}
        changed = []
        for key, value in values.items():
            entry = index.get(key)
            if entry is None:
                entry = index[key] = _Entry(key, value)
                self.entries.append(entry)
            elif only_missing or entry.value == value:
                continue
            else:
                entry.value, entry.text = value, None
            changed.append(key)
        return changed

    def render(self, secret_keys=None):
        """The file text; with ``secret_keys`` (an iterable, possibly empty) secrets are masked."""
        masked = secret_keys is not None
        lines = [e.render(masked and e.key is not None and is_secret(e.key, secret_keys)) for e in self.entries]
        return "".join(line + "\n" for line in lines)


def validate_values(values, source="values"):
    """Normalise a dict of new values to str -> str; returns (values, error message or None)."""
    out = {}
    for key, value in (values or {}).items():
        if not KEY_RE.match(str(key)):
            return None, "%s: %r is not a valid key ([A-Za-z_][A-Za-z0-9_]*)" % (source, key)
        if value is None:
            return None, "%s: %s has no value; use an empty string to set it empty" % (source, key)
        # YAML true/false arrive as bool; write the systemd-friendly lowercase spelling.
        value = ("true" if value else "false") if isinstance(value, bool) else str(value)
        if "\n" in value or "\r" in value:
            return None, "%s: the value of %s spans several lines; env files hold one line per key" % (source, key)
        if key == FLAG_KEY:
            try:
                parse_bool(value, source)
            except EnvFileError as e:
                return None, str(e)
        out[key] = value
    return out, None


# --- backups and the manifest --------------------------------------------------------------------

def sha256_bytes(data):
    return hashlib.sha256(data).hexdigest()


def utc_now():
    return datetime.datetime.now(datetime.timezone.utc)


def backup_name(path, backup_dir, now):
    return os.path.join(backup_dir, "%s.%s" % (os.path.basename(path), now.strftime("%Y%m%dT%H%M%S%fZ")))


def manifest_path(backup_dir):
    return os.path.join(backup_dir, MANIFEST_NAME)


def empty_manifest():
    return {"version": MANIFEST_VERSION, "backups": []}


def load_manifest(backup_dir):
    """The manifest in ``backup_dir``; a missing file is an empty manifest, a malformed one an error."""
    path = manifest_path(backup_dir)
    try:
        with open(path, "rb") as f:
            data = json.loads(f.read().decode("utf-8"))
    except FileNotFoundError:
        return empty_manifest()
    except (ValueError, UnicodeDecodeError) as e:
        raise EnvFileError(path, "backup manifest is not valid JSON (%s); fix or move it aside" % e)
    if not isinstance(data, dict) or not isinstance(data.get("backups"), list) \
            or not all(isinstance(b, dict) and "path" in b and "backup" in b for b in data["backups"]):
        raise EnvFileError(path, 'backup manifest must look like {"version": 1, "backups": [{"path": ..., '
                                 '"backup": ..., ...}]}')
    if data.get("version") != MANIFEST_VERSION:
        raise EnvFileError(path, "backup manifest version %r is not supported (expected %d)"
                           % (data.get("version"), MANIFEST_VERSION))
    return data


def make_entry(path, backup, content, now, label=None, flag=None):
    return {
        "path": path,
        "backup": backup,
        "sha256": sha256_bytes(content),
        "created": now.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "label": label,
        "flag": flag,
    }


def add_entry(manifest, entry):
    """A new manifest with ``entry`` appended (the input is left untouched)."""
    return dict(manifest, backups=list(manifest["backups"]) + [entry])


def backups_for(manifest, path):
    """Entries for ``path``, newest first (``created``, then position in the list, breaks ties)."""
    ranked = [(b.get("created") or "", i, b) for i, b in enumerate(manifest["backups"]) if b["path"] == path]
    return [b for _, _, b in sorted(ranked, key=lambda r: r[:2], reverse=True)]


def newest_backup(manifest, path, skip_labels=(PRE_RESTORE_LABEL,)):
    """The backup to restore for ``path``: the newest one not taken by a restore itself."""
    return next((b for b in backups_for(manifest, path) if b.get("label") not in skip_labels), None)


def render_manifest(manifest):
    return (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode("utf-8")


@contextlib.contextmanager
def _umask(mask):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def atomic_write(module, dest, data):
    """Write ``data`` to ``dest`` through a temp file in the same directory and module.atomic_move.

    atomic_move gives a newly created file 0666 & ~umask; the tight umask keeps env files and
    backups (which may hold secrets) from being world-readable even for a moment. Callers set the
    final mode afterwards.
    """
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(dest) or ".", prefix=".%s." % os.path.basename(dest))
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        with _umask(0o077):
            module.atomic_move(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_backup(module, path, content, backup_dir, manifest, label=None, flag=None, source_stat=None, now=None):
    """Store ``content`` (the current bytes of ``path``) in ``backup_dir`` and record it.

    The backup gets the original's mode and owner; the manifest is rewritten atomically. Returns
    (entry, new manifest).
    """
    now = now or utc_now()
    if not os.path.isdir(backup_dir):
        os.makedirs(backup_dir)
        os.chmod(backup_dir, 0o700)  # backups may hold secrets
    dest = backup_name(path, backup_dir, now)
    if os.path.exists(dest):
        raise EnvFileError(dest, "backup file already exists; refusing to overwrite it")
    atomic_write(module, dest, content)
    if source_stat is not None:
        os.chmod(dest, stat.S_IMODE(source_stat.st_mode))
        with contextlib.suppress(PermissionError):  # only root can give files away
            os.chown(dest, source_stat.st_uid, source_stat.st_gid)
    entry = make_entry(path, dest, content, now, label, flag)
    manifest = add_entry(manifest, entry)
    atomic_write(module, manifest_path(backup_dir), render_manifest(manifest))
    return entry, manifest
