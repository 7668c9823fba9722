"""After a crash: finish the sessions a killed process left open, without losing a word.

A session is cut off when its status is still "open" and no running process holds its
live lock. Each recording streamed while the person spoke that never became a turn's
(``NNNN.partial.wav``) gets its WAV header repaired, is transcribed, and is added as a
user turn with a ``recovered`` event; so is a finished recording no turn names (its turn was
about to be saved); then the session is marked "interrupted".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from voicereflect.errors import VoiceReflectError
from voicereflect.interfaces import Transcriber
from voicereflect.store import TinyDBSessionStore
from voicereflect.types import Turn


@dataclass
class RecoveryReport:
    """What :func:`recover` did: sessions closed, turns added, recordings it could not transcribe."""

    sessions: list[str] = field(default_factory=list)
    turns: int = 0
    untranscribed: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line for people."""
        if not self.sessions:
            return "Nothing to recover: every session was closed properly."
        line = (f"Recovered {len(self.sessions)} interrupted session(s) "
                f"({', '.join(self.sessions)}), adding {self.turns} turn(s) from recordings.")
        if self.untranscribed:
            line += f" {len(self.untranscribed)} recording(s) kept without words: run 'voicereflect sessions recover' again."
        return line


def cut_off_sessions(store: TinyDBSessionStore) -> list[str]:
    """Ids of sessions still "open" that no running process is using."""
    return [s.id for s in store.list_sessions() if s.status == "open" and not store.is_live(s.id)]


def recover(store: TinyDBSessionStore, transcriber: Callable[[], Transcriber] | None = None) -> RecoveryReport:
    """Close every cut-off session, turning its leftover recordings into turns.

    Args:
        store: the file store.
        transcriber: makes the speech-to-text stage, called only if a recording needs it.
            Without one (or when it fails) a recording is kept for a later run and the
            session stays open.
    """
    report = RecoveryReport()
    loaded: list[Transcriber] = []
    for session_id in cut_off_sessions(store):
        complete = True
        for path, streamed in _leftovers(store, session_id):
            try:
                clip = store.read_partial(path) if streamed else store.read_recording(_relative(store, path))
                if clip is None:
                    continue  # deleted meanwhile
                if transcriber is None:
                    raise VoiceReflectError("no speech-to-text model loaded")
                if not loaded:
                    loaded.append(transcriber())
                text = loaded[0].transcribe(clip).text.strip() if len(clip.samples) else ""
            except (VoiceReflectError, ValueError, RuntimeError, OSError):
                report.untranscribed.append(str(path))
                complete = False
                continue
            if not text:  # silence or a cough: nothing was said
                path.unlink(missing_ok=True)
                continue
            audio = store.adopt_recording(session_id, path) if streamed else _relative(store, path)
            event = {"type": "recovered", "detail": "transcribed after the session was cut off"}
            store.add_turn(session_id, Turn(role="user", text=text, source="recovered", audio=audio, events=(event,)))
            report.turns += 1
        if complete:
            store.end_session(session_id, "interrupted")
            report.sessions.append(session_id)
    return report


def _leftovers(store: TinyDBSessionStore, session_id: str) -> list[tuple[Path, bool]]:
    """Recordings of a cut-off session whose words were never saved, oldest first: (path, streamed).

    Streamed ones never became a turn's; finished ones no turn names were adopted just
    before a crash stopped their turn from being saved.
    """
    turns = store.get_session(session_id).turns
    named = {t.audio for t in turns if t.audio}
    saved = {e.get("file") for t in turns for e in t.events if e.get("type") == "recording_not_kept"}
    for path in store.partial_recordings(session_id):
        if path.name in saved:  # its words are saved; only deleting it was cut short
            path.unlink(missing_ok=True)
    finished = [(p, False) for p in store.recordings(session_id) if _relative(store, p) not in named]
    return sorted(finished + [(p, True) for p in store.partial_recordings(session_id)], key=lambda item: item[0].name)


def _relative(store: TinyDBSessionStore, path: Path) -> str:
    return path.relative_to(store.home).as_posix()
