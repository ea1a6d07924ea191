# -*- coding: utf-8 -*-
"""The fleet's state store and the fleet lock kept in it (controller side).

A store holds JSON objects under keys, each with a revision, and changes them only by
compare-and-swap, so that two runs meeting at the same key cannot both win. Two backends, chosen
by one setting (the inventory's ``fleet_state_backend``), with the same shapes and semantics:

* ``DirStore``: a local directory (the default, ``<fleet_artifacts_dir>/state``): one file a key,
  changed under an exclusive ``flock`` of the directory's lock file, written atomically (temp file,
  fsync, rename: fleet_artifacts.ArtifactStore).
* ``JetStreamStore``: a NATS JetStream Key-Value bucket: ``create`` fails when the key exists,
  ``update`` and ``delete`` carry the revision the caller read (the server refuses another).

Both: ``get(key)`` -> ``Entry(key, value, revision)`` or None; ``create(key, value)`` -> revision,
or ``KeyExists``; ``update(key, value, revision)`` -> new revision, or ``WrongRevision``;
``delete(key, revision)``, or ``WrongRevision``. Revisions are positive integers that only grow
across the whole store (JetStream's stream sequence; the directory keeps a sequence file), so a key
deleted and created again never repeats a revision a slow writer may still hold.

The fleet lock (``FleetLock``) is the key ``lock.<fleet>``. Its value names the holder (who, run id,
playbook, controller, process, since) and a lease (``lease_until``) that the holder renews. It is
taken when absent; refused, naming the holder, while the lease runs; taken over, and the takeover
written into the new value, when the lease has expired, or at once when the holder provably is gone
(a run of this same controller whose process has exited), or by force. The clock and the liveness
check are injected, so the rules are tested without waiting.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import fcntl
import json
import os
import re
import socket
import time

from ansible_collections.fleetwave.rollout.plugins.plugin_utils.fleet_artifacts import (ArtifactError, ArtifactStore,
                                                                                         epoch_of, utc)

BACKENDS = ('directory', 'jetstream')
DEFAULT_FLEET = 'fleet'
DEFAULT_BUCKET = 'fleetwave'
LOCK_PREFIX = 'lock.'

# Keys valid as JetStream KV keys and as file names alike: dot-separated tokens, no leading dot.
KEY_RE = re.compile(r'[A-Za-z0-9_=-]+(?:\.[A-Za-z0-9_=-]+)*')
# A fleet's name becomes one token of the lock's key; a bucket's name is JetStream's rule.
FLEET_RE = re.compile(r'[A-Za-z0-9][A-Za-z0-9_-]*')
BUCKET_RE = re.compile(r'[A-Za-z0-9_-]+')

Entry = collections.namedtuple('Entry', 'key value revision')


class StateError(Exception):
    """A store or lock problem; the message says what and where (never a credential)."""


class StoreUnavailable(StateError):
    """The store cannot be reached or used (directory not writable, NATS down, no JetStream)."""


class Conflict(StateError):
    """A compare-and-swap lost: ``current`` is the entry found (None when there is none)."""

    def __init__(self, message, current=None):
        super().__init__(message)
        self.current = current


class KeyExists(Conflict):
    pass


class WrongRevision(Conflict):
    pass


def check_key(key):
    if not isinstance(key, str) or not KEY_RE.fullmatch(key):
        raise StateError('state key %r is not usable (allowed: %s)' % (key, KEY_RE.pattern))
    return key


def _encode(value):
    if not isinstance(value, dict):
        raise StateError('a state value must be a JSON object, got %s' % type(value).__name__)
    return json.dumps(value, sort_keys=True, default=str).encode('utf-8')


def _decode(data, where):
    try:
        value = json.loads(bytes(data or b'').decode('utf-8'))
    except (ValueError, UnicodeDecodeError) as exc:
        raise StateError('%s is not a JSON object: %s' % (where, exc))
    if not isinstance(value, dict):
        raise StateError('%s is not a JSON object' % where)
    return value


# ================================================================================ the directory

class DirStore:
    """Keys are files ``<key>.json`` in one directory, each ``{key, revision, value, written}``.
    Every change holds an exclusive flock on ``.store.lock`` in that directory (threads and
    processes alike), reads the key, compares, and writes atomically; reads need no lock, a
    rename is atomic."""

    backend = 'directory'
    LOCK_FILE = '.store.lock'
    SEQUENCE_FILE = '.sequence'

    def __init__(self, path):
        if not path:
            raise StoreUnavailable('the directory state backend needs a directory (state_dir, the inventory\'s '
                                   'fleet_state_dir)')
        self.root = os.path.abspath(os.path.expanduser(str(path)))
        self._files = ArtifactStore(self.root)

    @property
    def where(self):
        return self.root

    def _file(self, key):
        return check_key(key) + '.json'

    @contextlib.contextmanager
    def _exclusive(self):
        try:
            os.makedirs(self.root, exist_ok=True)
            handle = open(os.path.join(self.root, self.LOCK_FILE), 'a', encoding='utf-8')
        except OSError as exc:
            raise StoreUnavailable('cannot use the state directory %s: %s' % (self.root, exc))
        with handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def _read(self, key):
        relpath = self._file(key)
        try:
            document = self._files.read_json(relpath)
        except ArtifactError as exc:
            raise StateError(str(exc))
        except OSError as exc:
            raise StoreUnavailable('cannot read %s: %s' % (self._files.path(relpath), exc))
        if document is None:
            return None
        if not (isinstance(document, dict) and isinstance(document.get('revision'), int)
                and isinstance(document.get('value'), dict)):
            raise StateError('%s is not a state entry (an object with revision and value)' % self._files.path(relpath))
        return Entry(key, document['value'], document['revision'])

    def _write(self, key, value, current):
        """Write value as the key's next revision (the caller holds the lock)."""
        data = _encode(value)
        sequence = os.path.join(self.root, self.SEQUENCE_FILE)
        try:
            with open(sequence, encoding='utf-8') as handle:
                last = int(handle.read().strip() or 0)
        except FileNotFoundError:
            last = 0
        except ValueError:
            raise StateError('%s is not a number: the store\'s revision sequence is damaged' % sequence)
        revision = max(last, current.revision if current else 0) + 1
        try:
            self._files.write_text(self.SEQUENCE_FILE, '%d\n' % revision)
            self._files.write_json(self._file(key), dict(key=key, revision=revision, value=json.loads(data),
                                                         written=utc()))
            self._sync_dir()
        except OSError as exc:
            raise StoreUnavailable('cannot write %s in %s: %s' % (self._file(key), self.root, exc))
        return revision

    def _sync_dir(self):
        fd = os.open(self.root, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def get(self, key):
        return self._read(check_key(key))

    def create(self, key, value):
        with self._exclusive():
            current = self._read(check_key(key))
            if current is not None:
                raise KeyExists('%s exists (revision %d)' % (key, current.revision), current)
            return self._write(key, value, None)

    def update(self, key, value, revision):
        with self._exclusive():
            current = self._read(check_key(key))
            if current is None or current.revision != revision:
                raise WrongRevision('%s is at revision %s, not %s' % (
                    key, current.revision if current else 'none (absent)', revision), current)
            return self._write(key, value, current)

    def delete(self, key, revision):
        with self._exclusive():
            current = self._read(check_key(key))
            if current is None or current.revision != revision:
                raise WrongRevision('%s is at revision %s, not %s' % (
                    key, current.revision if current else 'none (absent)', revision), current)
            try:
                os.unlink(self._files.path(self._file(key)))
                self._sync_dir()
            except OSError as exc:
                raise StoreUnavailable('cannot delete %s in %s: %s' % (self._file(key), self.root, exc))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        pass


# ================================================================================ NATS JetStream KV

class JetStreamStore:
    """A JetStream Key-Value bucket, created on first use (history of 16 revisions a key, no TTL:
    a lock's lease is in its value, so an expired lock is still there to say whom it belonged to
    when it is taken over). ``connection`` takes fleet_nats.connect's parameters (url, user,
    password, token, creds_file, connect_timeout); every message is redacted of them."""

    backend = 'jetstream'
    HISTORY = 16

    def __init__(self, connection, bucket=DEFAULT_BUCKET, create_bucket=True):
        if not connection or not connection.get('url'):
            raise StoreUnavailable('the jetstream state backend needs a NATS url (url, from the inventory\'s '
                                   'fleet_nats_connection)')
        if not isinstance(bucket, str) or not BUCKET_RE.fullmatch(bucket):
            raise StateError('bucket %r is not a JetStream bucket name (allowed: %s)' % (bucket, BUCKET_RE.pattern))
        self.params = dict(dict(user='', password='', token='', creds_file=None, connect_timeout=2.0), **connection)
        self.bucket, self.create_bucket = bucket, create_bucket
        self._loop = self._nc = self._kv = None

    @property
    def where(self):
        from ansible_collections.fleetwave.rollout.plugins.module_utils.fleet_nats import redact_url
        return 'bucket %s on NATS at %s' % (self.bucket, redact_url(self.params['url']))

    def _run(self, make):
        """Run one operation to its end on this store's own event loop; NATS trouble becomes
        StoreUnavailable, redacted."""
        import nats.errors
        import nats.js.errors
        from ansible_collections.fleetwave.rollout.plugins.module_utils.fleet_nats import NatsUnreachable, redact
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
        limit = float(self.params['connect_timeout']) + 10.0
        try:
            return self._loop.run_until_complete(asyncio.wait_for(make(), limit))
        except StateError:
            raise
        except NatsUnreachable as exc:
            raise StoreUnavailable(str(exc))
        except (nats.errors.NoRespondersError, nats.js.errors.ServiceUnavailableError) as exc:
            raise StoreUnavailable(redact('%s: the server answers no JetStream requests (%s): run nats-server with '
                                          'JetStream (-js), or set fleet_state_backend: directory'
                                          % (self.where, type(exc).__name__), self.params))
        except (nats.errors.Error, asyncio.TimeoutError, OSError) as exc:
            raise StoreUnavailable(redact('%s: %s' % (self.where, str(exc) or type(exc).__name__), self.params))

    async def _handle(self):
        import nats.js.errors
        from ansible_collections.fleetwave.rollout.plugins.module_utils.fleet_nats import connect
        if self._kv is None:
            if self._nc is None:
                self._nc = await connect(self.params)
            js = self._nc.jetstream(timeout=max(2.0, float(self.params['connect_timeout'])))
            try:
                self._kv = await js.key_value(self.bucket)
            except nats.js.errors.BucketNotFoundError:
                if not self.create_bucket:
                    return None  # a preview (check mode): an absent bucket holds no key
                try:
                    self._kv = await js.create_key_value(bucket=self.bucket, history=self.HISTORY,
                                                         description='fleetwave state: the fleet lock')
                except nats.js.errors.APIError:
                    self._kv = await js.key_value(self.bucket)  # created by another run meanwhile
        return self._kv

    async def _get(self, key):
        import nats.js.errors
        kv = await self._handle()
        if kv is None:
            return None
        try:
            entry = await kv.get(key)
        except nats.js.errors.KeyNotFoundError:  # absent, or deleted (a tombstone)
            return None
        return Entry(key, _decode(entry.value, '%s key %s' % (self.where, key)), entry.revision)

    def get(self, key):
        check_key(key)
        return self._run(lambda: self._get(key))

    def create(self, key, value):
        import nats.js.errors
        data = _encode(value)

        async def create():
            kv = await self._handle()
            try:
                return await kv.create(key, data)
            except nats.js.errors.KeyWrongLastSequenceError:
                current = await self._get(key)
                raise KeyExists('%s exists (revision %s)' % (key, current.revision if current else '?'), current)
        check_key(key)
        return self._run(create)

    def update(self, key, value, revision):
        import nats.js.errors
        data = _encode(value)

        async def update():
            kv = await self._handle()
            try:
                return await kv.update(key, data, last=revision)
            except nats.js.errors.KeyWrongLastSequenceError:
                current = await self._get(key)
                raise WrongRevision('%s is at revision %s, not %s' % (
                    key, current.revision if current else 'none (absent)', revision), current)
        check_key(key)
        return self._run(update)

    def delete(self, key, revision):
        import nats.js.errors

        async def delete():
            kv = await self._handle()
            try:
                await kv.delete(key, last=revision)
            except nats.js.errors.APIError as exc:
                # kv.delete does not translate the server's "wrong last sequence" as update does.
                if getattr(exc, 'err_code', None) not in (10071, 10164):
                    raise
                current = await self._get(key)
                raise WrongRevision('%s is at revision %s, not %s' % (
                    key, current.revision if current else 'none (absent)', revision), current)
        check_key(key)
        if not isinstance(revision, int) or revision < 1:  # 0 would delete unconditionally
            raise WrongRevision('%s: no revision to delete at' % key)
        self._run(delete)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        if self._loop is None:
            return
        try:
            if self._nc is not None and not self._nc.is_closed:
                self._loop.run_until_complete(asyncio.wait_for(self._nc.close(), 5.0))
        except Exception:  # closing is best effort: the connection dies with the process anyway
            pass
        finally:
            self._loop.close()
            self._loop = self._nc = self._kv = None


def open_store(backend, state_dir=None, bucket=DEFAULT_BUCKET, connection=None, create=True):
    """The store a setting names: 'directory' (state_dir) or 'jetstream' (bucket over connection).
    create=False (a preview) never creates the JetStream bucket."""
    if backend == 'directory':
        return DirStore(state_dir)
    if backend == 'jetstream':
        return JetStreamStore(connection or {}, bucket, create_bucket=create)
    raise StateError('unknown state backend %r (one of %s)' % (backend, ', '.join(BACKENDS)))


# ================================================================================ whose process

def _this_place():
    """'<boot id>/<pid namespace>' of this process: where a pid means the same process."""
    try:
        with open('/proc/sys/kernel/random/boot_id', encoding='ascii') as handle:
            boot = handle.read().strip()
        return '%s/%s' % (boot, os.readlink('/proc/self/ns/pid'))
    except OSError:
        return None


def process_identity(pid):
    """'<boot id>/<pid namespace>/<start time>' of a running process of this machine, or None
    (no such process, or no /proc to tell). The start time tells a reused pid apart."""
    place = _this_place()
    try:
        with open('/proc/%d/stat' % int(pid), encoding='utf-8', errors='replace') as handle:
            stat = handle.read()
    except (OSError, ValueError, TypeError):
        return None
    fields = stat.rsplit(')', 1)[-1].split()
    if place is None or len(fields) < 20:
        return None
    return '%s/%s' % (place, fields[19])  # field 22 of proc(5), counted after the ')' of the name


def holder_liveness(holder):
    """True when the holder's process provably runs, False when it provably has exited (a run of
    this controller - same host name, boot and pid namespace - whose process is gone or was
    replaced, or this controller has rebooted since), None when it cannot be told (another
    controller, such as another AWX job's container)."""
    token = holder.get('process')
    if not token or holder.get('controller') != socket.gethostname():
        return None
    place = _this_place()
    if place is None:
        return None
    boot, _sep, rest = token.partition('/')
    pidns = rest.rsplit('/', 1)[0]
    if pidns != place.split('/', 1)[1]:
        return None  # another pid namespace (a container of the same name): its pids are not ours
    if boot != place.split('/', 1)[0]:
        return False  # this machine rebooted since
    return process_identity(holder.get('pid')) == token


def this_process():
    """controller, pid and process identity of the ansible-playbook run calling us: an action plugin
    runs in a worker forked from it, so that is the parent."""
    pid = os.getppid()
    return dict(controller=socket.gethostname(), pid=pid, process=process_identity(pid))


# ================================================================================ the fleet lock

def describe_holder(holder):
    """'<who> (run <run id>, playbook <pb>, since <since>, lease until <t>)'."""
    return '%s (run %s, playbook %s, since %s, lease until %s)' % (
        holder.get('who') or 'unknown', holder.get('run_id') or '?', holder.get('playbook') or '?',
        holder.get('since') or '?', holder.get('lease_until') or '?')


FORCE_HINT = ('to roll back a stuck wave now: ansible-playbook playbooks/rollback.yml -e fleet_lock_force=true '
              '(the takeover is recorded)')


class LockHeld(StateError):
    """Acquiring was refused: another run holds the lock. The message names it fully."""

    def __init__(self, key, holder, why, where=''):
        self.key, self.holder, self.why = key, holder, why
        super().__init__('fleet locked by %s; wait for that run to end or for its lease to expire (a run that died '
                         'is then taken over, recorded), or, %s. (%s; lock %s%s.) Nothing was changed.'
                         % (describe_holder(holder), FORCE_HINT, why, key, ' in %s' % where if where else ''))


class LockLost(StateError):
    """Renewing was refused: this run no longer holds the lock (``holder``: who does, or None)."""

    def __init__(self, message, holder=None):
        super().__init__(message)
        self.holder = holder


class FleetLock:
    """The fleet lock in a store. ``clock`` gives the epoch (time.time), ``liveness(holder)`` says
    whether a holder's process runs (holder_liveness: True, False or None for unknown)."""

    ATTEMPTS = 20  # compare-and-swap rounds before giving up on a key that keeps changing

    def __init__(self, store, fleet=DEFAULT_FLEET, clock=time.time, liveness=holder_liveness):
        if not isinstance(fleet, str) or not FLEET_RE.fullmatch(fleet):
            raise StateError('fleet name %r is not usable (allowed: %s)' % (fleet, FLEET_RE.pattern))
        self.store, self.fleet, self.clock, self.liveness = store, fleet, clock, liveness
        self.key = LOCK_PREFIX + fleet

    def peek(self):
        """The lock's value as stored, or None when nobody holds it."""
        entry = self.store.get(self.key)
        return entry.value if entry else None

    # --- acquire ---------------------------------------------------------------------------

    def judge(self, entry, holder, now, force=False, force_run_id=None):
        """What acquiring does against entry: ('acquired' | 'resumed' | 'taken over', takeover
        record or None); raises LockHeld when it is refused. Writes nothing. force_run_id forces
        against that run only (the one a workflow handed over: the wave whose rollback this is)."""
        if entry is None:
            return 'acquired', None
        current = entry.value.get('holder') or {}
        named = bool(force_run_id) and current.get('run_id') == force_run_id
        force = force or named
        until = epoch_of(current.get('lease_until'))
        expired = until is None or now >= until
        alive = self.liveness(current)
        if current.get('run_id') == holder['run_id']:
            # The same run again (a re-run resuming it): only once its earlier process is gone, or its
            # lease expired where that cannot be told; two processes must never drive one run.
            if alive is False or (expired and alive is not True) or force:
                return 'resumed', None
            raise LockHeld(self.key, current, 'the same run is still held by process %s on controller %s%s'
                           % (current.get('pid') or '?', current.get('controller') or '?',
                              ', still running' if alive else ' (lease until %s)' % current.get('lease_until')),
                           self.store.where)
        if expired and alive is not True:
            reason = 'its lease expired at %s' % current.get('lease_until')
        elif alive is False:
            reason = 'its process %s on controller %s has exited' % (current.get('pid'), current.get('controller'))
        elif force:
            reason = '%s while %s' % (
                'forced from run %s, the run handed over (force_run_id)' % force_run_id if named
                else 'forced (fleet_lock_force)',
                'its process %s on this controller still runs' % current.get('pid') if alive
                else 'its lease ran until %s' % current.get('lease_until'))
        elif expired:
            raise LockHeld(self.key, current, 'its lease expired at %s, but its process %s on this controller still '
                           'runs: it renews the lease at its next round'
                           % (current.get('lease_until'), current.get('pid')), self.store.where)
        else:
            raise LockHeld(self.key, current, 'held from controller %s by process %s%s' % (
                current.get('controller') or '?', current.get('pid') or '?', ', still running' if alive else ''),
                self.store.where)
        return 'taken over', dict(
            previous=current, reason=reason, forced=reason.startswith('forced'), at=utc(now),
            expired_since=current.get('lease_until') if expired else None,
            expired_for_seconds=round(now - until, 3) if expired and until is not None else None)

    def acquire(self, holder, lease_seconds, force=False, force_run_id=None):
        """Take the lock for holder (who, run_id, playbook, controller, pid, process). Returns
        dict(action, holder, takeover, revision, key); raises LockHeld naming the holder."""
        for _attempt in range(self.ATTEMPTS):
            now = self.clock()
            entry = self.store.get(self.key)
            action, takeover = self.judge(entry, holder, now, force, force_run_id)
            since = (entry.value.get('holder') or {}).get('since') if action == 'resumed' else None
            mine = dict(holder, since=since or utc(now), lease_seconds=lease_seconds,
                        lease_until=utc(now + lease_seconds))
            value = dict(fleet=self.fleet, holder=mine, renewed=utc(now), takeover=takeover,
                         resumed=utc(now) if action == 'resumed' else None)
            try:
                if entry is None:
                    revision = self.store.create(self.key, value)
                else:
                    revision = self.store.update(self.key, value, entry.revision)
            except Conflict:
                continue  # someone else wrote meanwhile: judge again what is there now
            return dict(action=action, holder=mine, takeover=takeover, revision=revision, key=self.key,
                        previous=(entry.value.get('holder') if action == 'resumed' else None))
        raise StateError('the fleet lock %s kept changing during %d attempts; try again' % (self.key, self.ATTEMPTS))

    def preview_acquire(self, holder, lease_seconds, force=False, force_run_id=None):
        """What acquire would do now, writing nothing: its result, or action 'refused' with the holder
        and the refusal's message."""
        now = self.clock()
        entry = self.store.get(self.key)
        try:
            action, takeover = self.judge(entry, holder, now, force, force_run_id)
        except LockHeld as exc:
            return dict(action='refused', holder=exc.holder, takeover=None, revision=entry.revision, key=self.key,
                        msg=str(exc))
        mine = dict(holder, since=utc(now), lease_seconds=lease_seconds, lease_until=utc(now + lease_seconds))
        return dict(action=action, holder=mine, takeover=takeover, revision=entry.revision if entry else None,
                    key=self.key)

    # --- renew -----------------------------------------------------------------------------

    def _ours(self, entry, run_id, doing):
        """The entry's holder when it is run_id, else LockLost naming who holds it now."""
        if entry is None:
            raise LockLost('run %s cannot %s the fleet lock %s: nobody holds it - released by a run that took it '
                           'over from this one (a forced rollback records that in its rollback record), or removed by '
                           'hand; another run may have changed the fleet meanwhile, so this run stops here'
                           % (run_id, doing, self.key))
        current = entry.value.get('holder') or {}
        if current.get('run_id') != run_id:
            took = entry.value.get('takeover') or {}
            how = ''
            if (took.get('previous') or {}).get('run_id') == run_id:
                how = ', taken over from this run at %s (%s)' % (took.get('at'), took.get('reason'))
            raise LockLost('run %s no longer holds the fleet lock %s: it is held by %s%s; this run stops here, '
                           'before changing anything more' % (run_id, self.key, describe_holder(current), how), current)
        return current

    def renew(self, run_id, lease_seconds):
        """Extend run_id's lease to now + lease_seconds. Returns dict(action='renewed', holder, revision,
        lapsed_seconds: how long the lease had expired before, 0 when it had not); raises LockLost."""
        for _attempt in range(self.ATTEMPTS):
            now = self.clock()
            entry = self.store.get(self.key)
            current = self._ours(entry, run_id, 'renew')
            until = epoch_of(current.get('lease_until'))
            mine = dict(current, lease_seconds=lease_seconds, lease_until=utc(now + lease_seconds))
            try:
                revision = self.store.update(self.key, dict(entry.value, holder=mine, renewed=utc(now)),
                                             entry.revision)
            except Conflict:
                continue
            lapsed = round(now - until, 3) if until is not None and now > until else 0
            return dict(action='renewed', holder=mine, takeover=None, revision=revision, key=self.key,
                        lapsed_seconds=lapsed)
        raise StateError('the fleet lock %s kept changing during %d attempts; try again' % (self.key, self.ATTEMPTS))

    def preview_renew(self, run_id, lease_seconds):
        now = self.clock()
        entry = self.store.get(self.key)
        current = self._ours(entry, run_id, 'renew')
        return dict(action='renewed', holder=dict(current, lease_seconds=lease_seconds,
                                                  lease_until=utc(now + lease_seconds)),
                    takeover=None, revision=entry.revision, key=self.key, lapsed_seconds=0)

    # --- release ---------------------------------------------------------------------------

    def release(self, run_id, dry_run=False):
        """Give the lock up if run_id holds it. Returns dict(action='released' | 'already released'
        (nobody holds it) | 'not held' (another run does: left to it), holder, revision)."""
        for _attempt in range(self.ATTEMPTS):
            entry = self.store.get(self.key)
            if entry is None:
                return dict(action='already released', holder=None, takeover=None, revision=None, key=self.key)
            current = entry.value.get('holder') or {}
            if current.get('run_id') != run_id:
                return dict(action='not held', holder=current, takeover=None, revision=entry.revision, key=self.key)
            if dry_run:
                return dict(action='released', holder=current, takeover=None, revision=entry.revision, key=self.key)
            try:
                self.store.delete(self.key, entry.revision)
            except Conflict:
                continue
            return dict(action='released', holder=current, takeover=None, revision=entry.revision, key=self.key)
        raise StateError('the fleet lock %s kept changing during %d attempts; try again' % (self.key, self.ATTEMPTS))
