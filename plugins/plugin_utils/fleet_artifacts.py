# -*- coding: utf-8 -*-
# Every artifact (checkpoints, decisions, reports) is written through ArtifactStore, so that
# writes are atomic everywhere and a durable backend can replace the local directory later.

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile

MANIFEST = 'MANIFEST.sha256'


class ArtifactError(Exception):
    pass


class ArtifactStore:
    """A local directory. Writes go to a temp file in the target folder, are fsync'ed and
    renamed into place: a killed run leaves either the old file or the new one, never half."""

    def __init__(self, root):
        self.root = os.path.abspath(root)

    def path(self, *parts):
        full = os.path.abspath(os.path.join(self.root, *parts))
        if os.path.commonpath([full, self.root]) != self.root:
            raise ArtifactError('%s is outside the artifact store %s' % (full, self.root))
        return full

    def write_bytes(self, relpath, data):
        dest = self.path(relpath)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix='.%s.' % os.path.basename(dest), dir=os.path.dirname(dest))
        try:
            with os.fdopen(fd, 'wb') as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, 0o644)
            os.replace(tmp, dest)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        return dest

    def write_text(self, relpath, text):
        return self.write_bytes(relpath, text.encode('utf-8'))

    def write_json(self, relpath, obj):
        return self.write_text(relpath, json.dumps(obj, indent=2, sort_keys=True, default=str) + '\n')

    def read_json(self, relpath):
        """The parsed file, or None when it does not exist; a malformed file is an error naming it."""
        full = self.path(relpath)
        try:
            with open(full, 'rb') as handle:
                return json.loads(handle.read().decode('utf-8'))
        except FileNotFoundError:
            return None
        except (ValueError, UnicodeDecodeError) as exc:
            raise ArtifactError('%s is not valid JSON: %s' % (full, exc))

    def archive(self, reldir, into):
        """Move an existing folder aside (never delete evidence) before it is rewritten."""
        src = self.path(reldir)
        if not os.path.isdir(src):
            return None
        dest = self.path(into)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        if os.path.exists(dest):
            dest = '%s.%d' % (dest, len(os.listdir(os.path.dirname(dest))))
        shutil.move(src, dest)
        return dest

    def write_manifest(self, reldir):
        """SHA-256 of every file in the folder (sha256sum format, so `sha256sum -c` checks it)."""
        folder = self.path(reldir)
        lines = []
        for name in sorted(os.listdir(folder)):
            full = os.path.join(folder, name)
            if name == MANIFEST or name.startswith('.') or not os.path.isfile(full):
                continue
            with open(full, 'rb') as handle:
                lines.append('%s  %s\n' % (hashlib.sha256(handle.read()).hexdigest(), name))
        return self.write_text(os.path.join(reldir, MANIFEST), ''.join(lines))
