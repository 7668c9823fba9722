"""Sessions, turns and recordings: a crash-safe TinyDB store on disk (in memory for tests: memory_store.py).

Layout under the data folder (``home``)::

    .lock                                   one inter-process lock around every write
    sessions/<YYYY>/<session id>.json       the session and its turns (+ .json.bak, last good)
    index/<0-f>.json                        one summary row per session, in 16 shards
    index/pending/<session id>              a row being rewritten (empty marker file)
    audio/<session id>/<NNNN>.wav           recordings, 16-bit PCM
    audio/<session id>/<NNNN>.partial.wav   a recording streamed while spoken, not yet a turn's
    live/<session id>.lock                  held while a session runs (recovery skips it)
    plans/safety-plan.json                  the person's own safety plan (+ .json.bak)
    key.json                                only in an encrypted folder (see voicereflect.sealing)

Adding a turn rewrites the session's small file, then its row in one index shard, so
the cost does not grow with the number of sessions. The session file is the truth:
an index row is always recomputed from it whole. A marker file in ``index/pending``
lives from just before the session write to just after the row write, so a crash
between the two leaves a marker, and the next process to take the lock (or to list)
recomputes that row. :meth:`rebuild_index` recomputes every row.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from voicereflect.errors import DamagedFileError, SessionNotFound, StoreError
from voicereflect.sealing import FileSeal
from voicereflect.store_recordings import RecordingFiles
from voicereflect.storage import (AtomicJSONStorage, ensure_dir, fsync_dir, read_json_file,
                                  store_io_error)
from voicereflect.types import SessionNotes, SessionRecord, SessionSummary, Turn, now_iso

INDEX_SHARDS = 16
LOCK_TIMEOUT_S = 15.0
FIRST_WORDS = 12
_ID_PATTERN = re.compile(r"^\d{8}-\d{6}-[0-9a-f]{4,16}$")


def new_session_id(now: datetime | None = None) -> str:
    """A sortable, readable id: UTC time plus a random suffix, e.g. ``20261125-152301-a1b2``."""
    now = now or datetime.now(timezone.utc)
    return f"{now:%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


def first_words(text: str, count: int = FIRST_WORDS) -> str:
    """The first ``count`` words of ``text``, with an ellipsis if there were more."""
    words = text.split()
    return " ".join(words[:count]) + (" ..." if len(words) > count else "")


def summarize(meta: dict[str, Any], turns: list[dict[str, Any]]) -> SessionSummary:
    """The index row of a session, computed from its whole record."""
    opening = next((t["text"] for t in turns if t.get("role") == "user"), "")
    notes = SessionNotes.from_dict(meta.get("notes"))
    return SessionSummary(
        id=meta["id"],
        started_at=meta["started_at"],
        guide=meta["guide"],
        turns=len(turns),
        status=meta.get("status", "open"),
        ended_at=meta.get("ended_at"),
        first_words=first_words(opening),
        flagged=len(notes.flagged),
        tags=notes.tags,
        rating=notes.rating,
    )


def _record(meta: dict[str, Any], rows: list[dict[str, Any]]) -> SessionRecord:
    return SessionRecord(summary=summarize(meta, rows), turns=tuple(Turn.from_dict(r) for r in rows),
                         notes=SessionNotes.from_dict(meta.get("notes")))


def not_found(session_id: str) -> SessionNotFound:
    """The error for an unknown session id, with the command that lists the real ones."""
    return SessionNotFound(f"No session with id '{session_id}'. Run 'voicereflect sessions list' to see them.")


def _check_status(status: str) -> None:
    if not status or status == "open":
        raise ValueError(f"end_session needs a final status such as 'complete' or 'interrupted', not {status!r}")


class TinyDBSessionStore(RecordingFiles):
    """The SessionStore on disk: TinyDB files written atomically, under an inter-process lock.

    Every write holds ``home/.lock`` (so ``talk`` in one process and ``sessions list``
    in another cannot interleave a read-modify-write) and is fsynced before it returns.
    Reads take no lock: files are only ever replaced whole, never rewritten in place.
    """

    def __init__(self, home: Path, *, durable: bool = True, seal: FileSeal | None = None) -> None:
        """Use the data folder ``home`` (created 0700 on first write).

        Args:
            home: the data folder, usually ``config.data_home(settings)``.
            durable: fsync every write. Only bulk fills (benchmarks) turn this off.
            seal: encrypts every file when the folder has a key (see
                :func:`voicereflect.encryption.open_data_folder`); default: plain files.
        """
        from filelock import FileLock

        self.home = Path(home)
        self.durable = durable
        self.seal = seal if seal is not None else FileSeal(self.home)
        self._lock = FileLock(self.home / ".lock", timeout=LOCK_TIMEOUT_S, mode=0o600)

    # -- paths --------------------------------------------------------------------

    def session_path(self, session_id: str) -> Path:
        """The JSON file of a session (raises SessionNotFound for a malformed id)."""
        if not _ID_PATTERN.match(session_id):
            raise not_found(session_id)
        return self.home / "sessions" / session_id[:4] / f"{session_id}.json"

    def index_path(self, session_id: str) -> Path:
        """The index shard that holds this session's row."""
        return self.home / "index" / f"{zlib.crc32(session_id.encode()) % INDEX_SHARDS:x}.json"

    def audio_path(self, relative: str) -> Path:
        """The absolute path of a recording from the relative path :meth:`save_audio` returned."""
        path = self.home / relative
        if Path(relative).is_absolute() or ".." in Path(relative).parts or Path(relative).parts[:1] != ("audio",):
            raise StoreError(f"'{relative}' is not a recording path of this store (expected audio/<id>/<file>.wav).")
        return path

    # -- SessionStore ---------------------------------------------------------------

    def start_session(self, guide: str) -> str:
        """Create a session and return its id."""
        with self._locked():
            session_id = new_session_id()
            while self.session_path(session_id).exists():
                session_id = new_session_id()
            meta = {"id": session_id, "started_at": now_iso(), "guide": guide, "status": "open", "ended_at": None}
            with self._row_pending(session_id):
                with self._session_db(session_id) as db:
                    db.table("session").insert(meta)
                self._put_row(summarize(meta, []))
        return session_id

    def add_turn(self, session_id: str, turn: Turn) -> int:
        """Append a turn, commit it to disk (fsynced), and return its 0-based index."""
        data = turn.to_dict()
        json.dumps(data)  # fail on unserialisable events before touching the file
        with self._locked(), self._row_pending(session_id):
            with self._session_db(session_id) as db:
                meta = self._meta(db, session_id)
                turns = db.table("turns")
                turns.insert(data)
                rows = _ordered(turns)
            self._put_row(summarize(meta, rows))
        return len(rows) - 1

    @contextmanager
    def live(self, session_id: str) -> Iterator[None]:
        """Hold ``live/<id>.lock`` while a session runs, so recovery in another process leaves it alone."""
        from filelock import FileLock

        ensure_dir(self.home / "live", durable=self.durable)
        with FileLock(self.home / "live" / f"{session_id}.lock", mode=0o600):
            yield

    def is_live(self, session_id: str) -> bool:
        """Whether a running process holds this session's live lock."""
        from filelock import FileLock, Timeout

        path = self.home / "live" / f"{session_id}.lock"
        if not path.exists():
            return False
        try:
            with FileLock(path, timeout=0, mode=0o600):
                return False
        except Timeout:
            return True

    def end_session(self, session_id: str, status: str = "complete") -> None:
        """Mark a session ended ("complete", "stopped" (Ctrl-C), "paused" or "interrupted") and stamp ``ended_at``."""
        _check_status(status)
        with self._locked(), self._row_pending(session_id):
            with self._session_db(session_id) as db:
                meta = self._meta(db, session_id)
                meta.update(status=status, ended_at=now_iso())
                db.table("session").update({"status": status, "ended_at": meta["ended_at"]}, doc_ids=[1])
                rows = _ordered(db.table("turns"))
            self._put_row(summarize(meta, rows))

    def annotate(self, session_id: str, notes: SessionNotes) -> None:
        """Replace a session's notes (flags, tags, rating, recap); raises SessionNotFound."""
        self.update_notes(session_id, lambda _: notes)

    def update_notes(self, session_id: str, change: Callable[[SessionNotes], SessionNotes]) -> SessionNotes:
        """Change a session's notes from their current value, under the lock; return the new notes.

        Two processes changing notes at once (``talk`` saving its summary while ``review``
        flags a turn) both take effect: each change is applied to what the other wrote.
        """
        with self._locked(), self._row_pending(session_id):
            with self._session_db(session_id) as db:
                meta = self._meta(db, session_id)
                notes = change(SessionNotes.from_dict(meta.get("notes")))
                meta["notes"] = notes.to_dict()
                db.table("session").update({"notes": meta["notes"]}, doc_ids=[1])
                rows = _ordered(db.table("turns"))
            self._put_row(summarize(meta, rows))
        return notes

    def safety_plan(self) -> dict[str, Any]:
        """The person's safety plan as last saved ({} before one is written); StoreError if damaged."""
        data = read_json_file(self.plan_path(), self.seal)
        return dict((data or {}).get("plan", {}).get("1", {}))

    def save_safety_plan(self, plan: dict[str, Any]) -> None:
        """Replace the safety plan, durably (the previous version is kept as the last-good copy)."""
        from tinydb import TinyDB
        from tinydb.table import Document

        json.dumps(plan)  # fail on unserialisable data before touching the file
        with self._locked():
            ensure_dir(self.plan_path().parent, durable=self.durable)
            with TinyDB(self.plan_path(), storage=AtomicJSONStorage, durable=self.durable, seal=self.seal) as db:
                # One write: the plan's fields (entries, updated_at) are replaced whole.
                db.table("plan").upsert(Document(plan, doc_id=1))

    def plan_path(self) -> Path:
        """The file of the safety plan."""
        return self.home / "plans" / "safety-plan.json"

    def list_sessions(self) -> list[SessionSummary]:
        """All sessions, oldest first, from the index alone (no session file is opened).

        Sessions started within the same millisecond are ordered by id. Rows a crash
        left stale (see ``index/pending``) are recomputed first.
        """
        if self._pending_ids():
            with self._locked():
                pass  # taking the lock recomputes the pending rows
        summaries = []
        for shard in range(INDEX_SHARDS):
            path = self.home / "index" / f"{shard:x}.json"
            try:
                data = read_json_file(path, self.seal) or {}
            except DamagedFileError:
                data = self._rebuild_shard(path)
            summaries.extend(SessionSummary.from_dict(row) for row in data.get("sessions", {}).values())
        return sorted(summaries, key=lambda s: (s.started_at, s.id))

    def get_session(self, session_id: str) -> SessionRecord:
        """One session with its turns, read from its own file; raises SessionNotFound."""
        with self._session_db(session_id) as db:
            meta = self._meta(db, session_id)
            rows = _ordered(db.table("turns"))
        return _record(meta, rows)

    def delete_session(self, session_id: str) -> None:
        """Remove a session for good: its recordings, its file and last-good copy, its index row.

        Raises SessionNotFound. A crash part-way leaves a pending marker, and deleting
        again finishes the job.
        """
        import shutil

        with self._locked(), self._row_pending(session_id):
            path = self.session_path(session_id)
            if not path.exists():
                raise not_found(session_id)
            folder = self.home / "audio" / session_id
            try:
                if folder.exists():
                    shutil.rmtree(folder)
                damaged = list(path.parent.glob(f"{path.name}.damaged-*"))  # set aside by repair
                for doomed in (path.with_name(path.name + ".bak"), *damaged, path):
                    doomed.unlink(missing_ok=True)
                if self.durable:
                    fsync_dir(path.parent)
            except OSError as exc:
                raise store_io_error("delete", path, exc) from exc
            self._drop_row(session_id)

    def rebuild_index(self) -> int:
        """Recompute every index row from the session files; return how many sessions there are."""
        with self._locked():
            found = sorted(p for p in (self.home / "sessions").glob("*/*.json") if _ID_PATTERN.match(p.stem))
            for path in found:
                record = self.get_session(path.stem)
                self._put_row(record.summary)
            known = {path.stem for path in found}
            for summary in self.list_sessions():
                if summary.id not in known:
                    self._drop_row(summary.id)
        return len(found)

    # -- helpers --------------------------------------------------------------------

    @contextmanager
    def _locked(self) -> Iterator[None]:
        from filelock import Timeout

        try:
            ensure_dir(self.home, durable=self.durable)
            self._lock.acquire()
        except Timeout as exc:  # a subclass of OSError, so it comes first
            raise StoreError(
                f"Another voicereflect process has held {self._lock.lock_file} for over {LOCK_TIMEOUT_S:.0f} s. "
                "Close it and try again."
            ) from exc
        except OSError as exc:
            raise store_io_error("lock", self.home / ".lock", exc) from exc
        try:
            if self._lock.lock_counter == 1:
                self._finish_pending_rows()
            yield
        finally:
            self._lock.release()

    def _pending_ids(self) -> list[str]:
        try:
            return sorted(p.name for p in (self.home / "index" / "pending").iterdir() if _ID_PATTERN.match(p.name))
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise store_io_error("read", self.home / "index" / "pending", exc) from exc

    @contextmanager
    def _row_pending(self, session_id: str) -> Iterator[None]:
        """Mark a session's index row as being rewritten for the duration of the block.

        The marker is left behind only if the block fails or the process dies in it.
        """
        marker = self.home / "index" / "pending" / session_id
        try:
            ensure_dir(marker.parent, durable=self.durable)
            marker.touch(mode=0o600)
        except OSError as exc:
            raise store_io_error("write", marker, exc) from exc
        yield
        marker.unlink(missing_ok=True)

    def _finish_pending_rows(self) -> None:
        """Recompute the index rows a crash left half-written (called holding the lock)."""
        for session_id in self._pending_ids():
            try:
                self._put_row(self.get_session(session_id).summary)
            except SessionNotFound:
                self._drop_row(session_id)
            except StoreError:
                continue  # a damaged session file is reported when it is opened
            (self.home / "index" / "pending" / session_id).unlink(missing_ok=True)

    def _session_db(self, session_id: str) -> Any:
        from tinydb import TinyDB

        return TinyDB(self.session_path(session_id), storage=AtomicJSONStorage, durable=self.durable, seal=self.seal)

    def _next_turn_number(self, session_id: str) -> int:
        """The index the session's next turn will get (raises SessionNotFound)."""
        with self._session_db(session_id) as db:
            self._meta(db, session_id)
            return len(db.table("turns"))

    def _meta(self, db: Any, session_id: str) -> dict[str, Any]:
        meta = db.table("session").get(doc_id=1)
        if meta is None:
            if db.storage.path.exists():
                raise StoreError(f"{db.storage.path} has no session record. Move it aside and try again.")
            raise not_found(session_id)
        return dict(meta)

    def _put_row(self, summary: SessionSummary) -> None:
        from tinydb import Query, TinyDB

        path = self.index_path(summary.id)
        try:
            read_json_file(path, self.seal)
        except DamagedFileError:
            self._rebuild_shard(path)
        with TinyDB(path, storage=AtomicJSONStorage, durable=self.durable, seal=self.seal) as db:
            db.table("sessions").upsert(summary.to_dict(), Query().id == summary.id)

    def _rebuild_shard(self, path: Path) -> dict[str, Any]:
        """Set a damaged index shard aside and rebuild it from the session files.

        The index is derived data: the session files are the truth, so nothing is lost.
        The damaged file is kept beside it as ``<name>.damaged-<unix time>``.
        """
        with self._locked():
            try:  # another process may have repaired it meanwhile
                return read_json_file(path, self.seal) or {}
            except DamagedFileError:
                pass
            try:
                os.replace(path, path.with_name(f"{path.name}.damaged-{int(time.time())}"))
            except OSError as exc:
                raise store_io_error("move aside", path, exc) from exc
            for session_path in sorted((self.home / "sessions").glob("*/*.json")):
                if _ID_PATTERN.match(session_path.stem) and self.index_path(session_path.stem) == path:
                    try:
                        self._put_row(self.get_session(session_path.stem).summary)
                    except StoreError:
                        continue  # a damaged session file is reported when it is opened
            return read_json_file(path, self.seal) or {}

    def _drop_row(self, session_id: str) -> None:
        from tinydb import Query, TinyDB

        with TinyDB(self.index_path(session_id), storage=AtomicJSONStorage, durable=self.durable, seal=self.seal) as db:
            db.table("sessions").remove(Query().id == session_id)
            # Once more, so the last-good copy (.bak) no longer holds the row either.
            db.storage.write(db.storage.read())


def _ordered(table: Any) -> list[dict[str, Any]]:
    """A TinyDB table's records in insertion order (by document id)."""
    return [dict(doc) for doc in sorted(table.all(), key=lambda doc: doc.doc_id)]
