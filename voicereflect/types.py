"""Plain data that crosses every seam: audio clips, utterances, transcripts, messages, turns."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal

import numpy as np

SAMPLE_RATE = 16_000
"""Sample rate of every clip that goes to VAD and speech-to-text (Whisper's rate)."""

Role = Literal["user", "assistant"]


def now_iso() -> str:
    """Current time as an ISO 8601 string in UTC, to the millisecond."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


@dataclass(frozen=True, eq=False)
class AudioClip:
    """Mono float32 audio in [-1, 1] at ``sample_rate`` Hz."""

    samples: np.ndarray
    sample_rate: int = SAMPLE_RATE

    @property
    def duration_s(self) -> float:
        """Length of the clip in seconds."""
        return len(self.samples) / float(self.sample_rate)


@dataclass(frozen=True, eq=False)
class Utterance:
    """One stretch of speech that the endpointer judged to be a whole turn.

    Attributes:
        clip: the audio, 16 kHz mono, including a short pre-roll before speech began.
        started_at: ISO time the speech started.
        ended_at: ISO time the endpointer decided the turn was over.
        speech_end_monotonic: ``time.monotonic()`` of the last voiced frame (for latency figures).
        recording: the file the audio was streamed to while it was spoken, if any
            (a :class:`voicereflect.recording.PartialRecording`, finished).
        text: the transcript, when the listener transcribed the turn while it was spoken
            (None: not transcribed yet).
    """

    clip: AudioClip
    started_at: str
    ended_at: str
    speech_end_monotonic: float = 0.0
    recording: Path | None = None
    text: str | None = None


@dataclass(frozen=True)
class Transcript:
    """What speech-to-text heard in a clip.

    ``runner_up`` is the reading the decoder nearly chose instead (short clips only; ""
    when unknown): a clip that ends on "and" heard as "end." may have "and..." there.
    """

    text: str
    duration_s: float
    language: str = "en"
    runner_up: str = ""


@dataclass(frozen=True)
class UserInput:
    """One turn from the person, spoken or typed.

    Attributes:
        text: the words, as transcribed or typed.
        started_at: ISO time the person started.
        source: "voice" or "text".
        utterance: the recording, for spoken turns.
    """

    text: str
    started_at: str
    source: Literal["voice", "text"] = "text"
    utterance: Utterance | None = None
    failure: str = ""
    """Why the words are missing (speech-to-text failed); the recording is still kept."""


@dataclass(frozen=True)
class Message:
    """One chat message for the language model."""

    role: Literal["system", "user", "assistant"]
    content: str


@dataclass(frozen=True)
class Turn:
    """One saved turn of a session.

    Attributes:
        role: "user" or "assistant".
        text: exactly what was said (never rewritten).
        started_at: ISO time.
        source: where the text came from: "voice", "text", "llm", "scripted", "safety", "system".
        audio: path of the recording relative to the data folder, if any.
        events: extra records on the turn, e.g. ``{"type": "safety", ...}``.
    """

    role: Role
    text: str
    started_at: str = field(default_factory=now_iso)
    source: str = "text"
    audio: str | None = None
    events: tuple[dict[str, Any], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The turn as JSON-ready data."""
        return {
            "role": self.role,
            "text": self.text,
            "started_at": self.started_at,
            "source": self.source,
            "audio": self.audio,
            "events": [dict(e) for e in self.events],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Turn":
        """Rebuild a turn from :meth:`to_dict` output."""
        return cls(
            role=data["role"],
            text=data["text"],
            started_at=data.get("started_at", ""),
            source=data.get("source", "text"),
            audio=data.get("audio"),
            events=tuple(data.get("events", ())),
        )


NOT_SAID = ("command", "rating", "crisis_choice", "stt_failed")
"""Event types that mark a turn of the person's as something other than what they reflected on."""

MAX_TAG_CHARS = 40


def clean_tag(tag: str) -> str | None:
    """A tag as stored (single spaces, the person's own case); None if it is empty, too long or unprintable."""
    cleaned = " ".join(tag.split())
    return cleaned if tag.isprintable() and 0 < len(cleaned) <= MAX_TAG_CHARS else None


def merge_tags(*groups: Sequence[str]) -> tuple[str, ...]:
    """The tags of ``groups`` in order, one per word ignoring case ("Work" and "work"): the first spelling wins."""
    first: dict[str, str] = {}
    for tag in (t for group in groups for t in group):
        first.setdefault(tag.casefold(), tag)
    return tuple(first.values())


@dataclass(frozen=True)
class SessionNotes:
    """What the person added to a session, during it or afterwards.

    Attributes:
        flagged: indexes of the person's turns marked "bring this to therapy", ascending.
        tags: the person's own labels for the session, e.g. ``("work", "mum")``.
        rating: how intense the session felt, 1-10, if the person answered (asked once, skippable).
        recap: a short summary written after the session.
        recap_source: "llm" (written by the language model) or "words" (built from the
            person's flagged turns and first sentences, without a model).
    """

    flagged: tuple[int, ...] = ()
    tags: tuple[str, ...] = ()
    rating: int | None = None
    recap: str = ""
    recap_source: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data: ``{flagged, tags, rating, recap, recap_source}``."""
        return {"flagged": list(self.flagged), "tags": list(self.tags), "rating": self.rating,
                "recap": self.recap, "recap_source": self.recap_source}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> "SessionNotes":
        """Rebuild notes from :meth:`to_dict` output (None or missing keys give the defaults)."""
        data = data or {}
        return cls(flagged=tuple(sorted(set(data.get("flagged", ())))), tags=tuple(data.get("tags", ())),
                   rating=data.get("rating"), recap=data.get("recap", ""), recap_source=data.get("recap_source", ""))


@dataclass(frozen=True)
class SessionSummary:
    """One line of the session list."""

    id: str
    started_at: str
    guide: str
    turns: int
    status: str = "open"
    ended_at: str | None = None
    first_words: str = ""
    flagged: int = 0
    tags: tuple[str, ...] = ()
    rating: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data: ``{id, started_at, guide, turns, status, ended_at, first_words, flagged, tags, rating}``."""
        return {
            "id": self.id,
            "started_at": self.started_at,
            "guide": self.guide,
            "turns": self.turns,
            "status": self.status,
            "ended_at": self.ended_at,
            "first_words": self.first_words,
            "flagged": self.flagged,
            "tags": list(self.tags),
            "rating": self.rating,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SessionSummary":
        """Rebuild a row from :meth:`to_dict` output (rows from older versions lack the newer keys)."""
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        known["tags"] = tuple(known.get("tags", ()))
        return cls(**known)


@dataclass(frozen=True)
class SessionRecord:
    """A whole saved session: its summary, every turn, and the person's notes on it."""

    summary: SessionSummary
    turns: tuple[Turn, ...]
    notes: SessionNotes = field(default_factory=SessionNotes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data: the summary's keys plus ``turns`` and ``notes``."""
        data = self.summary.to_dict()
        data["turns"] = [t.to_dict() for t in self.turns]
        data["notes"] = self.notes.to_dict()
        return data
