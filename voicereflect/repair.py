"""``voicereflect sessions repair``: roll damaged session files back to their last-good copy.

Every store write keeps the previous version of a file as ``<name>.bak`` (a hard link,
taken before the atomic rename). When a file is found damaged (0 bytes, cut short, not
JSON, failing its integrity check), repair sets it aside as ``<name>.damaged-<time>``,
never deleting it, and puts the last-good copy in its place; then the index is rebuilt
from the session files. A rolled-back session may lack its newest turn, and the report
says which sessions were rolled back so the person knows.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from voicereflect.errors import DamagedFileError, StoreError
from voicereflect.storage import atomic_write, backup_path, read_json_file, store_io_error
from voicereflect.store import TinyDBSessionStore


@dataclass
class RepairReport:
    """What :func:`repair` did: files rolled back, files with no usable copy, sessions now listed."""

    restored: list[Path] = field(default_factory=list)
    unrecoverable: list[Path] = field(default_factory=list)
    sessions: int = 0

    def lines(self) -> list[str]:
        """What to tell the person, a line per file."""
        if not self.restored and not self.unrecoverable:
            return [f"Every session file is readable ({self.sessions} sessions); the index was rebuilt."]
        lines = [f"Rolled back {path.name} to its last-good copy (its newest change may be missing; "
                 f"the damaged file is kept beside it)." for path in self.restored]
        lines += [f"{path} is damaged and has no usable last-good copy; it was moved aside as "
                  f"{path.name}.damaged-*. The other sessions are fine." for path in self.unrecoverable]
        return lines


def repair(store: TinyDBSessionStore) -> RepairReport:
    """Roll every damaged session file back to its last-good copy, then rebuild the index.

    Raises:
        StoreError: a file could not be read, moved or written (the message says which).
    """
    from filelock import FileLock

    report = RepairReport()
    with FileLock(store.home / ".lock", mode=0o600):
        for path in sorted((store.home / "sessions").glob("*/*.json")):
            try:
                read_json_file(path, store.seal)
                continue
            except DamagedFileError:
                pass
            good = _readable_copy(backup_path(path), path, store)
            if good is None:
                _set_aside(path, move=True)
                report.unrecoverable.append(path)
                continue
            _set_aside(path, move=False)  # a second name first, so the path is never missing
            try:
                atomic_write(path, lambda f: f.write(good))
            except OSError as exc:
                raise store_io_error("restore", path, exc) from exc
            report.restored.append(path)
    report.sessions = store.rebuild_index()
    return report


def _readable_copy(backup: Path, original: Path, store: TinyDBSessionStore) -> bytes | None:
    """The bytes of ``backup`` if it holds a readable version of ``original``, else None."""
    try:
        if read_json_file(backup, store.seal, as_path=original) is None:
            return None
        return backup.read_bytes()
    except (DamagedFileError, OSError):
        return None
    except StoreError:
        return None  # e.g. written by a newer version


def _set_aside(path: Path, *, move: bool) -> None:
    """Keep the damaged file as ``<name>.damaged-<time>``: moved, or linked (the caller then replaces it)."""
    aside = path.with_name(f"{path.name}.damaged-{time.time_ns()}")
    try:
        (os.replace if move else os.link)(path, aside)
    except OSError as exc:
        raise store_io_error("move aside", path, exc) from exc
