"""One-method seams between the stages of the pipeline.

Each Protocol is a role; adapters in audio, vad, stt, llm, tts and store implement
them, and ``tests/fakes.py`` holds stand-ins that implement them for unit tests.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Protocol

from voicereflect.types import (AudioClip, Message, SessionNotes, SessionRecord, SessionSummary, Transcript, Turn,
                                UserInput, Utterance)


class Listener(Protocol):
    """Hears one whole utterance from the microphone (or another audio source)."""

    def listen(self) -> Utterance | None:
        """Block until the person has finished a turn; None when input has ended."""


class Transcriber(Protocol):
    """Turns speech into text."""

    def transcribe(self, clip: AudioClip, prompt: str = "") -> Transcript:
        """Transcribe a 16 kHz mono clip; ``prompt`` is what was said just before it in the same turn."""


class InputChannel(Protocol):
    """Where the person's turns come from: speech (listen + transcribe) or typed lines."""

    def next_input(self) -> UserInput | None:
        """The person's next turn; None when they have gone (end of input)."""


class ChatModel(Protocol):
    """A language model behind an OpenAI-compatible chat API."""

    def stream(self, messages: Sequence[Message]) -> Iterator[str]:
        """Yield the reply's text as it is generated. Raises LLMError on failure."""


class ChatConnection(ChatModel, Protocol):
    """A ChatModel as the composition root holds it: one it must close when the session ends."""

    def close(self) -> None:
        """End every open request and the connection (before an embedded server is stopped)."""


class Synthesizer(Protocol):
    """Text-to-speech that renders text to audio without playing it."""

    def synthesize(self, text: str) -> AudioClip:
        """Render ``text`` to a clip at the voice's own sample rate."""


class Player(Protocol):
    """Plays audio to the speaker."""

    def play(self, clip: AudioClip) -> None:
        """Play the whole clip and return once it has been heard."""


class Speaker(Protocol):
    """Says a reply aloud (or not, for --no-speak)."""

    def say(self, text: str) -> None:
        """Speak ``text`` and return once it has been heard whole."""

    def start(self, text: str) -> None:
        """Start speaking ``text`` (after anything already started) and return without waiting."""

    def finish(self) -> bool:
        """Wait until everything started has been heard; False if it was cut short."""


class SessionStore(Protocol):
    """Durable storage of sessions and turns. Every write is committed before it returns."""

    def start_session(self, guide: str) -> str:
        """Create a session and return its id."""

    def add_turn(self, session_id: str, turn: Turn) -> int:
        """Append a turn, commit it, and return its index."""

    def save_audio(self, session_id: str, clip: AudioClip) -> str:
        """Write a recording durably; return its path relative to the data folder."""

    def end_session(self, session_id: str, status: str = "complete") -> None:
        """Mark a session ended: "complete", "stopped" (Ctrl-C), "paused" or "interrupted"."""

    def update_notes(self, session_id: str, change: Callable[[SessionNotes], SessionNotes]) -> SessionNotes:
        """Apply ``change`` to a session's current notes (flags, tags, rating, recap) atomically; return them."""

    def list_sessions(self) -> list[SessionSummary]:
        """All sessions, oldest first."""

    def get_session(self, session_id: str) -> SessionRecord:
        """One session with its turns; raises SessionNotFound."""

    def delete_session(self, session_id: str) -> None:
        """Remove a session, its turns and its recordings for good; raises SessionNotFound."""
