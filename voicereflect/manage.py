"""Managing saved sessions: export them readably, delete them for good, expire old recordings.

Plain functions over the session store's public API; ``cli.py`` wraps each in a thin command.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from voicereflect.errors import StoreError, VoiceReflectError
from voicereflect.storage import DIR_MODE, atomic_write, ensure_dir, fsync_dir, store_io_error
from voicereflect.types import SessionRecord, Turn

FORMATS = ("json", "markdown")
SESSIONS_FILE = "sessions.json"
# json.dumps(ensure_ascii=False) keeps a lone surrogate as a raw character, which UTF-8 cannot encode.
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


class ExportError(VoiceReflectError):
    """An export could not be written where asked (it exists already, or its folder does not)."""


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote.

    Attributes:
        path: the folder (json) or file (markdown) that was created.
        sessions: how many sessions it holds.
        recordings: recordings copied into it (json only).
        missing: recordings the sessions name that were no longer on disk, so were skipped.
    """

    path: Path
    sessions: int
    recordings: int = 0
    missing: int = 0


@dataclass(frozen=True)
class DeletionPlan:
    """Sessions that exist and are about to be deleted, and how many turns they hold."""

    session_ids: tuple[str, ...]
    turns: int


# -- choosing sessions --------------------------------------------------------------


def select_sessions(store: Any, session_ids: Sequence[str] | None) -> list[SessionRecord]:
    """The named sessions (in the order given, each once), or every session oldest first if None.

    Every session is read before this returns, so an unknown id raises SessionNotFound
    before the caller has written or deleted anything.
    """
    ids = [s.id for s in store.list_sessions()] if session_ids is None else list(dict.fromkeys(session_ids))
    return [store.get_session(session_id) for session_id in ids]


def plan_deletion(store: Any, session_ids: Sequence[str] | None) -> DeletionPlan:
    """Check that every named session exists (all of them if None) and count their turns.

    Raises:
        SessionNotFound: for the first unknown id; nothing has been deleted.
    """
    records = select_sessions(store, session_ids)
    return DeletionPlan(tuple(r.summary.id for r in records), sum(len(r.turns) for r in records))


def delete_sessions(store: Any, session_ids: Sequence[str]) -> int:
    """Delete each session for good (recordings, file, last-good copy, index row); return how many.

    Check the ids first with :func:`plan_deletion`: this stops at the first failure.
    """
    for session_id in session_ids:
        store.delete_session(session_id)
    return len(session_ids)


# -- export -------------------------------------------------------------------------


def default_export_path(fmt: str, folder: Path, now: datetime | None = None) -> Path:
    """``folder/voicereflect-export-<YYYYMMDD-HHMMSS>`` (local time), with ``.md`` for markdown."""
    stamp = (now or datetime.now()).strftime("%Y%m%d-%H%M%S")
    return Path(folder) / f"voicereflect-export-{stamp}{'.md' if fmt == 'markdown' else ''}"


def export_sessions(store: Any, records: Sequence[SessionRecord], out: Path, fmt: str = "json") -> ExportResult:
    """Write ``records`` to ``out`` as ``fmt`` ("json" or "markdown"); never overwrites anything."""
    if fmt == "json":
        return export_json(store, records, out)
    if fmt == "markdown":
        return export_markdown(records, out)
    raise ValueError(f"export format must be one of {FORMATS}, not {fmt!r}")


def export_json(store: Any, records: Sequence[SessionRecord], out: Path) -> ExportResult:
    """Create the folder ``out`` (0700) with ``sessions.json`` and ``audio/<id>/<file>.wav`` copies (0600).

    ``sessions.json`` is a list of session objects shaped like ``sessions show --json``;
    each turn's ``audio`` path is relative to the export folder, as it was to the data
    folder. Recordings already gone (expired by ``[storage] audio_days``) are counted in
    :attr:`ExportResult.missing`, not an error.

    Raises:
        ExportError: ``out`` exists, or its parent folder does not.
    """
    out = Path(out)
    _check_new(out)
    try:
        os.mkdir(out, DIR_MODE)
        os.chmod(out, DIR_MODE)  # mkdir's mode is filtered by the umask
    except FileExistsError as exc:
        raise _exists(out) from exc
    except OSError as exc:
        raise store_io_error("create", out, exc) from exc
    copied = missing = 0
    for record in records:
        for relative in _recordings(store, record):
            if _copy_recording(store, relative, out):
                copied += 1
            else:
                missing += 1
    payload = json_text([r.to_dict() for r in records]).encode("utf-8")
    _write_new(out / SESSIONS_FILE, lambda f: f.write(payload))
    return ExportResult(out, len(records), copied, missing)


def export_markdown(records: Sequence[SessionRecord], out: Path) -> ExportResult:
    """Write ``records`` as one readable Markdown file ``out`` (0600); see :func:`markdown_text`.

    Raises:
        ExportError: ``out`` exists, or its parent folder does not.
    """
    out = Path(out)
    _check_new(out)
    # backslashreplace: a character UTF-8 cannot hold (a lone surrogate) stays visible, not dropped.
    payload = markdown_text(records).encode("utf-8", errors="backslashreplace")
    _write_new(out, lambda f: f.write(payload))
    return ExportResult(out, len(records))


def markdown_text(records: Sequence[SessionRecord]) -> str:
    """Sessions as Markdown: a heading per session, its date, guide and status, then the transcript.

    Turns read ``**You:** ...`` and ``**voicereflect:** ...``; a turn where crisis
    resources were shown is followed by a quoted note saying so.
    """
    lines = ["# voicereflect sessions", ""]
    for record in records:
        summary = record.summary
        lines += [f"## Session {summary.id}", "",
                  f"- Date: {_readable_time(summary.started_at)}",
                  f"- Guide: {summary.guide}",
                  f"- Status: {summary.status}", ""]
        if not record.turns:
            lines += ["_No turns._", ""]
        for turn in record.turns:
            lines += _markdown_turn(turn)
    return "\n".join(lines).rstrip("\n") + "\n"


def _markdown_turn(turn: Turn) -> list[str]:
    from voicereflect.safety.responses import event_note

    who = "You" if turn.role == "user" else "voicereflect"
    # Two trailing spaces make a Markdown line break, so a multi-line turn stays one block.
    lines = [f"**{who}:** " + turn.text.replace("\r\n", "\n").replace("\n", "  \n"), ""]
    for event in turn.events:
        if event.get("type") == "safety":
            lines += [f"> Safety: {event_note(event)}.", ""]
    return lines


def _readable_time(iso: str) -> str:
    try:
        when = datetime.fromisoformat(iso)
    except ValueError:
        return iso
    return when.strftime("%Y-%m-%d %H:%M UTC") if when.utcoffset() == timedelta(0) else when.isoformat()


def json_text(data: Any) -> str:
    """Indented JSON that keeps text readable and escapes only lone surrogates (valid UTF-8)."""
    text = json.dumps(data, indent=2, ensure_ascii=False)
    return _LONE_SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text) + "\n"


def _recordings(store: Any, record: SessionRecord) -> list[str]:
    """Relative paths of a session's recordings: those its turns name, then any others on disk."""
    named = [t.audio for t in record.turns if t.audio]
    on_disk = [f"audio/{record.summary.id}/{p.name}" for p in store.recordings(record.summary.id)]
    return list(dict.fromkeys(named + on_disk))


def _copy_recording(store: Any, relative: str, out: Path) -> bool:
    """Write one recording, readable (decrypted), to the same relative path under ``out``; False if it is gone."""
    try:
        store.audio_path(relative)
    except StoreError:
        return False  # not a path inside the store: never follow it
    wav = store.recording_bytes(relative)
    if wav is None:
        return False
    target = out / relative
    try:
        ensure_dir(target.parent, durable=False)
    except OSError as exc:
        raise store_io_error("create", target.parent, exc) from exc
    _write_new(target, lambda f: f.write(wav))
    return True


def _check_new(out: Path) -> None:
    if os.path.lexists(out):
        raise _exists(out)
    if not out.parent.is_dir():
        raise ExportError(f"Folder {out.parent} does not exist. Create it, or choose another --out.")


def _exists(out: Path) -> ExportError:
    return ExportError(f"{out} already exists; exports never overwrite. Choose another --out or move it aside.")


def _write_new(path: Path, write: Any) -> None:
    """Write a new 0600 file whole, refusing to replace one that appeared meanwhile."""
    try:
        atomic_write(path, write, replace=False)
    except FileExistsError as exc:
        raise _exists(path) from exc
    except OSError as exc:
        raise store_io_error("write", path, exc) from exc


# -- retention ----------------------------------------------------------------------


def apply_audio_retention(store: Any, days: int, now: datetime | None = None) -> int:
    """Delete the recordings of sessions that started more than ``days`` days ago; keep their text.

    Only ``*.wav`` files in ``audio/<session id>/`` folders of sessions in the store's
    list are touched; a folder left empty is removed. Turns keep naming the deleted
    files, and readers treat a missing recording as expired.

    Args:
        store: a TinyDBSessionStore (``home``, ``list_sessions()`` and ``recordings(id)``).
        days: ``[storage] audio_days``; 0 keeps every recording.
        now: the present, timezone-aware (a naive time is taken as UTC); defaults to now.

    Returns:
        How many recording files were deleted.
    """
    if days < 0:
        raise ValueError(f"days must be 0 (keep everything) or more, not {days}")
    audio = Path(store.home) / "audio"
    if days == 0 or not audio.is_dir():
        return 0
    cutoff = _aware(now or datetime.now(timezone.utc)) - timedelta(days=days)
    started = {s.id: s.started_at for s in store.list_sessions()}
    removed = 0
    for folder in sorted(audio.iterdir()):
        when = _parse_time(started.get(folder.name, ""))
        if folder.is_dir() and when is not None and when < cutoff:
            durable = getattr(store, "durable", True)
            removed += _remove_recordings(folder, store.recordings(folder.name), durable=durable)
    return removed


def _remove_recordings(folder: Path, paths: list[Path], *, durable: bool) -> int:
    """Delete ``paths`` (finished recordings: streamed partial ones stay for recovery) from ``folder``."""
    removed = 0
    try:
        for path in paths:
            try:
                path.unlink()
            except FileNotFoundError:
                continue  # removed meanwhile by another process
            removed += 1
        if durable and removed:
            fsync_dir(folder)
    except OSError as exc:
        raise store_io_error("delete", folder, exc) from exc
    try:
        folder.rmdir()  # only if empty; anything else there is left alone
    except OSError:
        pass
    return removed


def _parse_time(iso: str) -> datetime | None:
    try:
        return _aware(datetime.fromisoformat(iso))
    except ValueError:
        return None


def _aware(when: datetime) -> datetime:
    return when if when.tzinfo is not None else when.replace(tzinfo=timezone.utc)
