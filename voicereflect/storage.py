"""Crash-safe file writing for the session store, and the TinyDB Storage built on it.

TinyDB's own JSONStorage rewrites its file in place and reads a 0-byte file as an
empty database, so a ``kill -9`` or power cut mid-write can silently lose a session
(see docs/safety-and-privacy.md, "Durability anchors"). Everything here writes a
temporary file in the same folder, fsyncs it, renames it over the target and fsyncs
the folder, so a reader sees either the old file or the new one, never a mix.
"""

from __future__ import annotations

import errno
import json
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from tinydb.storages import Storage

from voicereflect.errors import DamagedFileError, DecryptionError, StoreError

if TYPE_CHECKING:
    from voicereflect.sealing import FileSeal

SCHEMA_VERSION = 2
"""Version of the file layout; stored in every JSON file under the ``_meta`` table.

1: sessions and turns. 2: a session's ``notes`` (flagged turns, tags, rating, recap),
and their counts in its index row.
"""


def _v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    """Give sessions empty notes, and index rows the keys that show them."""
    for record in data.get("session", {}).values():
        record.setdefault("notes", {"flagged": [], "tags": [], "rating": None, "recap": "", "recap_source": ""})
    for row in data.get("sessions", {}).values():
        row.setdefault("flagged", 0)
        row.setdefault("tags", [])
        row.setdefault("rating", None)
    return data


MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {1: _v1_to_v2}
"""How to bring a file of schema N up to N + 1; applied in order when a file is read.

A migrated file is rewritten (at the current schema) the next time it is written, and
its last-good copy keeps the old version until then.
"""

META_TABLE = "_meta"
FILE_MODE = 0o600
DIR_MODE = 0o700


def store_io_error(action: str, path: Path, exc: OSError) -> StoreError:
    """A one-line StoreError for a failed read or write, naming the path and a next step."""
    reason = exc.strerror or str(exc)
    if exc.errno == errno.ENOSPC or exc.errno == errno.EDQUOT:
        hint = "The disk is full: free some space and try again."
    elif exc.errno in (errno.EACCES, errno.EPERM):
        hint = f"Check that you own {path.parent} and can write to it."
    elif exc.errno == errno.EROFS:
        hint = "The disk is read-only: set [storage] home or VOICEREFLECT_HOME to a writable folder."
    else:
        hint = "Check that the data folder exists and is writable (VOICEREFLECT_HOME or [storage] home)."
    return StoreError(f"Could not {action} {path}: {reason}. {hint}")


def fsync_dir(folder: Path) -> None:
    """Make a rename or new entry in ``folder`` durable."""
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def ensure_dir(folder: Path, *, durable: bool = True) -> None:
    """Create ``folder`` and missing parents as 0700, whatever the umask."""
    if folder.is_dir():
        return
    ensure_dir(folder.parent, durable=durable)
    try:
        os.mkdir(folder, DIR_MODE)
    except FileExistsError:
        return
    # mkdir's mode is filtered by the umask; chmod is not.
    os.chmod(folder, DIR_MODE)
    if durable:
        fsync_dir(folder.parent)


def _temp_path(path: Path, tag: str) -> Path:
    # Hidden and unique per writer, in the same folder so the rename stays atomic.
    return path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.{tag}")


def atomic_write(
    path: Path,
    write: Callable[[IO[bytes]], None],
    *,
    backup: Path | None = None,
    replace: bool = True,
    durable: bool = True,
) -> None:
    """Write a file so that a crash leaves either the old or the new content.

    Args:
        path: the file to write (0600); its folder must exist.
        write: called with a binary file open for writing (and seeking) at offset 0.
        backup: if given and ``path`` exists, the old version is hard-linked there first.
        replace: if False, fail with FileExistsError instead of replacing ``path``.
        durable: fsync the file and the folder (only bulk fills in benchmarks skip this).

    Raises:
        OSError: the caller translates it with :func:`store_io_error`.
    """
    temp = _temp_path(path, "tmp")
    fd = os.open(temp, os.O_RDWR | os.O_CREAT | os.O_EXCL, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, "w+b", closefd=False) as handle:
            write(handle)
            handle.flush()
        if durable:
            os.fsync(fd)
    except BaseException:
        os.close(fd)
        temp.unlink(missing_ok=True)
        raise
    os.close(fd)
    try:
        if backup is not None and path.exists():
            # The previous version is never modified in place, so a hard link is a copy.
            link = _temp_path(backup, "tmp")
            os.link(path, link)
            os.replace(link, backup)
        if replace:
            os.replace(temp, path)
        else:
            os.link(temp, path)  # no-clobber: raises FileExistsError
            temp.unlink()
    finally:
        temp.unlink(missing_ok=True)
    if durable:
        fsync_dir(path.parent)


def _damaged(path: Path, what: str) -> DamagedFileError:
    backup = backup_path(path)
    if backup.exists():
        where = (f"A last-good copy is at {backup.name} (it may lack the latest change): "
                 "run 'voicereflect sessions repair' to roll back to it.")
    else:
        where = f"There is no last-good copy; move {path.name} aside to go on."
    return DamagedFileError(f"{path} is damaged ({what}). {where}")


def backup_path(path: Path) -> Path:
    """Where the last-good copy of ``path`` is kept."""
    return path.with_name(path.name + ".bak")


def read_json_file(path: Path, seal: FileSeal | None = None, *, as_path: Path | None = None) -> dict[str, Any] | None:
    """Parse one store file: None if it does not exist, StoreError if it is damaged.

    A 0-byte, truncated or non-JSON file is never taken for an empty database.

    Args:
        seal: the data folder's seal (None: plain files).
        as_path: for a last-good copy, the file it is a copy of (what it was sealed for).
    """
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise store_io_error("read", path, exc) from exc
    if not raw:
        raise _damaged(path, "empty, 0 bytes")
    if seal is not None:
        try:
            raw = seal.unseal(path, raw, as_path=as_path)
        except DecryptionError as exc:
            raise _damaged(path, "it fails its integrity check") from exc
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _damaged(path, f"not JSON: {exc}") from exc
    if not isinstance(data, dict) or not all(isinstance(t, dict) for t in data.values()):
        raise _damaged(path, "not a table of records")
    schema = data.get(META_TABLE, {}).get("1", {}).get("schema")
    if not isinstance(schema, int):
        raise _damaged(path, "no schema version")
    if schema > SCHEMA_VERSION:
        raise StoreError(
            f"{path} was written by a newer voicereflect (schema {schema}, this one reads {SCHEMA_VERSION}). "
            "Upgrade voicereflect."
        )
    for version in range(schema, SCHEMA_VERSION):
        data = MIGRATIONS[version](data)
    data[META_TABLE] = {"1": {"schema": SCHEMA_VERSION}}
    return data


class AtomicJSONStorage(Storage):
    """TinyDB storage: one JSON file, replaced atomically, with a last-good ``.bak`` copy.

    Use one instance per operation, inside the store's lock: it remembers what it last
    read or wrote, so TinyDB's repeated reads within one operation parse the file once,
    and only a version it has seen whole is kept as the ``.bak`` copy.
    """

    def __init__(self, path: Path, *, durable: bool = True, seal: FileSeal | None = None) -> None:
        """Open (lazily) the file at ``path``; its folder is created 0700 on first write.

        Args:
            durable: fsync every write (only bulk fills in benchmarks turn it off).
            seal: the data folder's seal, which encrypts what is written when it has a key.
        """
        self.path = Path(path)
        self.durable = durable
        self.seal = seal
        self._data: dict[str, Any] | None = None
        self._known_good = False

    def read(self) -> dict[str, dict[str, Any]] | None:
        """The whole database, None if the file does not exist yet; StoreError if damaged."""
        if self._data is None:
            self._data = read_json_file(self.path, self.seal)
            self._known_good = self._data is not None
        return self._data

    def write(self, data: dict[str, dict[str, Any]]) -> None:
        """Replace the file with ``data`` plus the schema version, durably."""
        data[META_TABLE] = {"1": {"schema": SCHEMA_VERSION}}
        # ensure_ascii keeps any Python string (even a lone surrogate) exactly round-trippable.
        payload = json.dumps(data, ensure_ascii=True).encode("ascii")
        if self.seal is not None:
            payload = self.seal.seal(self.path, payload)
        backup = backup_path(self.path) if self._known_good else None
        self._data = None  # TinyDB mutated it in place; trust only what reaches the disk
        try:
            ensure_dir(self.path.parent, durable=self.durable)
            atomic_write(self.path, lambda f: f.write(payload), backup=backup, durable=self.durable)
        except OSError as exc:
            raise store_io_error("write", self.path, exc) from exc
        self._data = data
        self._known_good = True

    def close(self) -> None:
        """Forget the cached data."""
        self._data = None
