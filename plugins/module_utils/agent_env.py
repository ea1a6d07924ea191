# -*- coding: utf-8 -*-
"""Env-file logic shared by the agent_env and agent_env_info modules.

Agents are systemd units reading ``/etc/agents/<name>.env`` through ``EnvironmentFile=``.
Everything that reads, edits, masks or backs up such a file lives here, so the two modules and
the unit tests agree on one grammar. Standard library only: this runs on the targets.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import fcntl
import hashlib
import json
import os
import re
import stat
import tempfile
import time

from ansible_collections.fleetwave.rollout.plugins.module_utils.fleet_nats import redact_url

FLAG_KEY = "ENABLE_UNIFIED_SUBJECTS"
MASK = "********"
MANIFEST_NAME = "manifest.json"
LOCK_NAME = ".lock"
LOCK_TIMEOUT = 120
MANIFEST_VERSION = 1
PRE_RESTORE_LABEL = "pre-restore"

KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
# Key names that hold secrets; over-masking (e.g. PASSIVE_MODE) is the safe side to err on.
SECRET_KEY_RE = re.compile(r"PASS|PWD|SECRET|TOKEN|KEY|CRED|AUTH|SEED|PRIVATE|COOKIE|SESSION", re.IGNORECASE)
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


def mask_value(key, value, secret_keys=()):
    """What may be shown of ``value``: all of it, its URL credentials redacted, or ``MASK``.

    A secret is recognised by its key name and, whatever the key, by its shape: credentials in a
    URL (``nats://user:pw@host``) are a secret under any name, e.g. NATS_URL.
    """
    if is_secret(key, secret_keys):
        return MASK
    return redact_url(value) if "@" in value and "://" in value else value


def mask_values(values, secret_keys=()):
    """Copy of ``values`` with every secret (by key or by value) masked."""
    return {k: mask_value(k, v, secret_keys) for k, v in values.items()}


# --- booleans ------------------------------------------------------------------------------------

def parse_bool(value, path="<value>", line=None, key=FLAG_KEY):
    lowered = str(value).strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise EnvFileError(path, "%s=%r is not a boolean (use true/false, 1/0 or yes/no)" % (key, value), line)


# --- parsing and rendering -----------------------------------------------------------------------
#
# systemd's grammar (src/basic/env-file.c, checked against systemd 252 by
# tests/integration/test_agent_env_systemd.py): "\n" and "\r" both end a line; leading blanks are
# skipped; "#" or ";" first on a line starts a comment; KEY, blanks, "=" and blanks are skipped;
# then the value is a sequence of '...' (literal), "..." (backslash escapes only " \ ` $ and a
# newline, keeps other backslashes) and bare text (backslash escapes anything, backslash-newline
# continues the line, trailing blanks dropped). Quotes count only where a value part starts.
# Stricter than systemd, and refused with the line number: a line without "=", an invalid or
# repeated key (systemd ignores the first / keeps the last silently), a quote never closed
# (systemd takes the rest of the file), a comment ending in a backslash (systemd < 254 joins the
# next line to the comment, later versions do not), a byte-order mark, NUL and invalid UTF-8
# (systemd refuses the whole file, so the unit does not start).

_NEWLINE = "\n\r"
_BLANK = " \t\n\r"
_DQ_ESCAPABLE = '"\\`$'


def _scan_value(text, i, path, line_at):
    """Parse the value starting at ``text[i]`` (just after "="); returns (value, end) where end is
    the index after the line terminator (or len(text))."""
    out = []
    trail = None  # index in out where trailing unescaped blanks of bare text start
    state = "pre"
    n = len(text)
    while i < n:
        c = text[i]
        if state == "pre":
            if c in _NEWLINE:
                return "".join(out), i + 1
            if c in "'\"":
                quote_start, state = i, c
            elif c == "\\":
                state = "bare_esc"
            elif c not in _BLANK:
                state, trail = "bare", None
                out.append(c)
        elif state == "bare":
            if c in _NEWLINE:
                break
            if c == "\\":
                state, trail = "bare_esc", None
            else:
                if c not in _BLANK:
                    trail = None
                elif trail is None:
                    trail = len(out)
                out.append(c)
        elif state == "bare_esc":
            state = "bare"
            if c not in _NEWLINE:  # backslash-newline continues the value on the next line
                out.append(c)
        elif state == "'":
            if c == "'":
                state = "pre"
            else:
                out.append(c)
        elif state == '"':
            if c == '"':
                state = "pre"
            elif c == "\\":
                state = "dq_esc"
            else:
                out.append(c)
        else:  # dq_esc
            state = '"'
            if c in _DQ_ESCAPABLE:
                out.append(c)
            elif c != "\n":
                out.extend(("\\", c))
        i += 1
    if state in ("'", '"', "dq_esc"):
        raise EnvFileError(path, "unterminated %s quote (systemd would take the rest of the file as the value)"
                           % (state if state != "dq_esc" else '"'), line_at(quote_start))
    if trail is not None:
        del out[trail:]
    return "".join(out), min(i + 1, n)


def format_line(key, value, quote=""):
    """``KEY=VALUE``, quoted only when the value needs it (keeping a single-quote style if safe).

    Inside double quotes systemd unescapes only \\" \\\\ \\` \\$; escaping " and \\ is enough to
    read back exactly ``value``.
    """
    if quote == "'" and "'" not in value:
        return "%s='%s'" % (key, value)
    if quote or not _BARE_VALUE_RE.match(value):
        return '%s="%s"' % (key, value.replace("\\", "\\\\").replace('"', '\\"'))
    return "%s=%s" % (key, value)


def _quote_of(raw_value):
    stripped = raw_value.lstrip(" \t")
    return stripped[0] if stripped[:1] in ("'", '"') else ""


class _Entry:
    """One assignment (``key`` set) or the text between assignments (blanks, comments), kept verbatim."""

    __slots__ = ("key", "value", "quote", "text", "end")

    def __init__(self, key=None, value=None, quote="", text=None, end="\n"):
        self.key, self.value, self.quote, self.text, self.end = key, value, quote, text, end

    def render(self, shown=None):
        """The entry's text; ``shown`` replaces the value (masking) when it differs from it."""
        if self.key is not None and shown is not None and shown != self.value:
            return "%s=%s%s" % (self.key, shown, self.end)  # for display only, never written
        # text is None once the value has been edited; untouched lines come back byte-identical.
        return self.text if self.text is not None else format_line(self.key, self.value, self.quote) + self.end


class EnvFile:
    """An env file as an ordered list of entries that can be edited and rendered back."""

    def __init__(self, path, entries=None):
        self.path = path
        self.entries = entries or []

    @classmethod
    def parse(cls, text, path):
        # Line numbers count "\n" only, as editors and sed do, even where "\r" also ends a line.
        def line_at(index):
            return text.count("\n", 0, index) + 1

        if text.startswith("\ufeff"):
            raise EnvFileError(path, "starts with a byte-order mark, which systemd reads as part of the first "
                                     "key; save the file without it", 1)
        if "\x00" in text:
            raise EnvFileError(path, "contains a NUL character; systemd refuses the whole file",
                               line_at(text.index("\x00")))
        entries, seen, filler_start, i, n = [], {}, 0, 0, len(text)
        while i < n:
            c = text[i]
            if c in _BLANK:
                i += 1
                continue
            if c in "#;":
                eol = next((j for j in range(i, n) if text[j] in _NEWLINE), n)
                if text[i:eol].endswith("\\"):
                    raise EnvFileError(path, "a comment ends with a backslash: systemd before 254 treats the next "
                                             "line as part of the comment, later versions do not; remove the "
                                             "backslash", line_at(i))
                i = eol + 1
                continue
            lineno = line_at(i)
            eq = next((j for j in range(i, n) if text[j] in "=" + _NEWLINE), n)
            if eq == n or text[eq] != "=":
                raise EnvFileError(path, "expected KEY=VALUE, found a line without '='", lineno)
            key = text[i:eq].rstrip(" \t")
            if key.startswith("export ") or key.startswith("export\t"):
                raise EnvFileError(path, "'export' is shell syntax; EnvironmentFile= lines are KEY=VALUE", lineno)
            if not KEY_RE.match(key):
                # The text is not echoed: a stray line may well be a password.
                raise EnvFileError(path, "not a valid key ([A-Za-z_][A-Za-z0-9_]*); the line is not shown", lineno)
            if key in seen:
                raise EnvFileError(path, "%r is defined twice (first on line %d)" % (key, seen[key]), lineno)
            seen[key] = lineno
            value, end = _scan_value(text, eq + 1, path, line_at)
            if filler_start < i:
                entries.append(_Entry(text=text[filler_start:i]))
            # An edited value keeps the original line ending ("\r" ends a line for systemd too).
            entries.append(_Entry(key, value, _quote_of(text[eq + 1:end]), text[i:end],
                                  "\r" if text[end - 1:end] == "\r" else "\n"))
            filler_start = i = end
        if filler_start < n:
            entries.append(_Entry(text=text[filler_start:]))
        return cls(path, entries)

    @classmethod
    def from_bytes(cls, data, path):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise EnvFileError(path, "not valid UTF-8 (byte %d); systemd refuses the whole file" % e.start,
                               data.count(b"\n", 0, e.start) + 1)
        return cls.parse(text, path)

    @property
    def values(self):
        return {e.key: e.value for e in self.entries if e.key is not None}

    def line_of(self, key):
        line = 1
        for e in self.entries:
            if e.key == key:
                return line
            line += e.render().count("\n")
        return None

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
                last = self.entries[-1] if self.entries else None
                # A last line without its newline must get one before a key is appended after it;
                # an assignment is re-rendered rather than patched, as it may end in a backslash.
                if last is not None and last.text and last.text[-1] not in _NEWLINE:
                    if last.key is None:
                        last.text += "\n"
                    else:
                        last.text = None
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
        return "".join(e.render(mask_value(e.key, e.value, secret_keys) if masked and e.key is not None else None)
                       for e in self.entries)


def check_value(key, value, source="values"):
    """None, or why systemd (or the one-line-per-key rule) cannot take ``value``; never echoes it."""
    bad = next((c for c in value if ord(c) < 32 and c != "\t" or c == "\x7f"), None)
    if bad in ("\n", "\r"):
        return "%s: the value of %s spans several lines; env files hold one line per key" % (source, key)
    if bad is not None:
        return ("%s: the value of %s contains the control character U+%04X; allowed are printable characters "
                "and tabs%s" % (source, key, ord(bad), " (systemd refuses a file with NUL)" if bad == "\x00" else ""))
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "%s: the value of %s is not valid UTF-8, which systemd refuses" % (source, key)
    return None


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
        err = check_value(key, value, source)
        if err:
            return None, err
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


def read_nofollow(path, what="file"):
    """(bytes, os.stat_result) of the regular file ``path``; a symlink or anything else is refused.

    O_NOFOLLOW makes the check and the read one step, so a symlink swapped in meanwhile is refused too.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise EnvFileError(path, "%s is a symlink; refusing to follow it" % what)
        raise
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise EnvFileError(path, "%s is not a regular file" % what)
        return f.read(), st


def load_manifest(backup_dir):
    """The manifest in ``backup_dir``; a missing file is an empty manifest, a malformed one an error."""
    path = manifest_path(backup_dir)
    try:
        raw, _ = read_nofollow(path, "the backup manifest")
        data = json.loads(raw.decode("utf-8"))
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


def check_backup_file(backup_dir, backup):
    """Refuse a manifest entry whose backup is not a file of ``backup_dir`` itself.

    The manifest is data: an entry naming /etc/shadow or ../x must not make a restore copy it.
    """
    name = os.path.basename(backup)
    if not isinstance(backup, str) or os.path.normpath(os.path.dirname(backup)) != os.path.normpath(backup_dir) \
            or name in ("", MANIFEST_NAME, LOCK_NAME, ".", "..") or name.startswith("."):
        raise EnvFileError(manifest_path(backup_dir), "the backup %r recorded there is not a backup file in %s; "
                                                      "refusing to restore from outside the backup directory"
                           % (backup, backup_dir))


def ensure_backup_dir(backup_dir):
    """Create ``backup_dir`` 0700, or check an existing one; returns a warning or None.

    Backups hold secrets. An existing directory with group/other permissions is tightened to
    0700 (and said so) rather than refused: that is what any run would have to do to go on. One
    owned by another non-root user, or a symlink, is refused: someone else could swap backups.
    """
    try:
        st = os.lstat(backup_dir)
    except FileNotFoundError:
        try:
            os.makedirs(backup_dir, 0o700)
        except FileExistsError:  # a task running at the same time made it: check that one
            return ensure_backup_dir(backup_dir)
        os.chmod(backup_dir, 0o700)  # makedirs' mode is filtered by the umask
        return None
    if stat.S_ISLNK(st.st_mode):
        raise EnvFileError(backup_dir, "the backup directory is a symlink; refusing to follow it (use the real path)")
    if not stat.S_ISDIR(st.st_mode):
        raise EnvFileError(backup_dir, "the backup directory exists but is not a directory")
    if st.st_uid not in (0, os.geteuid()):
        raise EnvFileError(backup_dir, "the backup directory is owned by uid %d, not by root or uid %d; "
                                       "refusing to keep backups there" % (st.st_uid, os.geteuid()))
    if stat.S_IMODE(st.st_mode) & 0o077:
        os.chmod(backup_dir, 0o700)
        return "%s had mode %04o; tightened to 0700 as backups hold secrets" % (backup_dir, stat.S_IMODE(st.st_mode))
    return None


@contextlib.contextmanager
def host_lock(backup_dir, timeout=LOCK_TIMEOUT):
    """Hold the exclusive lock of this host's env files and manifest (``<backup_dir>/.lock``).

    Every edit is read-modify-write of the env file and of the manifest; without the lock two
    tasks running at once (forks, several plays) lose each other's keys and backup entries.
    """
    lock = os.path.join(backup_dir, LOCK_NAME)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0), 0o600)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise EnvFileError(lock, "still locked by another agent_env task after %d s; nothing changed"
                                       % timeout)
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)  # closing releases the lock


@contextlib.contextmanager
def _umask(mask):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def atomic_write(module, dest, data):
    """Write ``data`` to ``dest`` through a fsynced temp file in the same directory, renamed into place.

    module.atomic_move keeps an existing ``dest``'s mode and owner but gives a new file
    0666 & ~umask; the tight umask keeps env files and backups (which may hold secrets) from being
    readable by others even for a moment. Callers set a new file's final mode afterwards.
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

    Call with host_lock held and ``manifest`` loaded under it. The backup gets the original's mode
    and owner; the manifest is rewritten atomically. Returns (entry, new manifest).
    """
    now = now or utc_now()
    dest = backup_name(path, backup_dir, now)
    while os.path.lexists(dest):  # two backups within one microsecond: never overwrite one
        now += datetime.timedelta(microseconds=1)
        dest = backup_name(path, backup_dir, now)
    atomic_write(module, dest, content)
    if source_stat is not None:
        os.chmod(dest, stat.S_IMODE(source_stat.st_mode))
        with contextlib.suppress(PermissionError):  # only root can give files away
            os.chown(dest, source_stat.st_uid, source_stat.st_gid)
    entry = make_entry(path, dest, content, now, label, flag)
    manifest = add_entry(manifest, entry)
    atomic_write(module, manifest_path(backup_dir), render_manifest(manifest))
    return entry, manifest
