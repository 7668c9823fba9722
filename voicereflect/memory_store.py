"""The SessionStore in memory, for unit tests: the same contract as the file store, nothing on disk."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from voicereflect.store import _check_status, _record, new_session_id, not_found, summarize
from voicereflect.types import AudioClip, SessionNotes, SessionRecord, SessionSummary, Turn, now_iso


class MemorySessionStore:
    """The SessionStore in memory, for unit tests: same contract, nothing on disk.

    Turns are stored as JSON round-trips, as the file store would keep them, and
    recordings are kept in :attr:`audio` by their relative path.
    """

    def __init__(self) -> None:
        """An empty store."""
        self._sessions: dict[str, tuple[dict[str, Any], list[dict[str, Any]]]] = {}
        self.audio: dict[str, AudioClip] = {}
        self._plan: dict[str, Any] = {}

    def safety_plan(self) -> dict[str, Any]:
        """The safety plan as last saved ({} before one is written)."""
        return json.loads(json.dumps(self._plan))

    def save_safety_plan(self, plan: dict[str, Any]) -> None:
        """Replace the safety plan."""
        self._plan = json.loads(json.dumps(plan))

    def start_session(self, guide: str) -> str:
        """Create a session and return its id."""
        session_id = new_session_id()
        while session_id in self._sessions:
            session_id = new_session_id()
        meta = {"id": session_id, "started_at": now_iso(), "guide": guide, "status": "open", "ended_at": None}
        self._sessions[session_id] = (meta, [])
        return session_id

    def add_turn(self, session_id: str, turn: Turn) -> int:
        """Append a turn and return its 0-based index."""
        _, turns = self._get(session_id)
        turns.append(json.loads(json.dumps(turn.to_dict())))
        return len(turns) - 1

    def delete_session(self, session_id: str) -> None:
        """Forget a session and its recordings; raises SessionNotFound."""
        self._get(session_id)
        del self._sessions[session_id]
        for relative in [r for r in self.audio if r.startswith(f"audio/{session_id}/")]:
            del self.audio[relative]

    def save_audio(self, session_id: str, clip: AudioClip) -> str:
        """Keep the clip in :attr:`audio`; return the path the file store would use."""
        _, turns = self._get(session_id)
        number, attempt = len(turns), 0
        relative = f"audio/{session_id}/{number:04d}.wav"
        while relative in self.audio:
            attempt += 1
            relative = f"audio/{session_id}/{number:04d}-{attempt}.wav"
        self.audio[relative] = clip
        return relative

    def end_session(self, session_id: str, status: str = "complete") -> None:
        """Mark a session ended and stamp ``ended_at``."""
        _check_status(status)
        meta, _ = self._get(session_id)
        meta.update(status=status, ended_at=now_iso())

    def annotate(self, session_id: str, notes: SessionNotes) -> None:
        """Replace a session's notes; raises SessionNotFound."""
        self.update_notes(session_id, lambda _: notes)

    def update_notes(self, session_id: str, change: Callable[[SessionNotes], SessionNotes]) -> SessionNotes:
        """Change a session's notes from their current value; return the new notes."""
        meta, _ = self._get(session_id)
        notes = change(SessionNotes.from_dict(meta.get("notes")))
        meta["notes"] = notes.to_dict()
        return notes

    def list_sessions(self) -> list[SessionSummary]:
        """All sessions, oldest first."""
        summaries = [summarize(meta, turns) for meta, turns in self._sessions.values()]
        return sorted(summaries, key=lambda s: s.started_at)  # stable: ties keep creation order

    def get_session(self, session_id: str) -> SessionRecord:
        """One session with its turns; raises SessionNotFound."""
        meta, turns = self._get(session_id)
        return _record(meta, turns)

    def _get(self, session_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        if session_id not in self._sessions:
            raise not_found(session_id)
        return self._sessions[session_id]
