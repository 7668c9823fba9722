"""Stand-ins that implement our own Protocols, for fast unit tests (no mocks of our code)."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence

from voicereflect.errors import LLMError
from voicereflect.types import Message, UserInput, now_iso


class ScriptedInput:
    """An InputChannel that replays typed turns, then ends (None)."""

    def __init__(self, lines: Sequence[str], interrupt_after: int | None = None) -> None:
        self.lines = list(lines)
        self.interrupt_after = interrupt_after
        self.given = 0

    def next_input(self) -> UserInput | None:
        if self.interrupt_after is not None and self.given >= self.interrupt_after:
            raise KeyboardInterrupt
        if not self.lines:
            return None
        self.given += 1
        return UserInput(text=self.lines.pop(0), started_at=now_iso(), source="text")


class ScriptedChat:
    """A ChatModel that replays replies (an Exception item is raised) and records requests."""

    def __init__(self, replies: Sequence[str | Exception]) -> None:
        self.replies = list(replies)
        self.requests: list[list[Message]] = []
        self.pieces_sent = 0

    def stream(self, messages: Sequence[Message]) -> Iterator[str]:
        self.requests.append(list(messages))
        reply = self.replies.pop(0) if self.replies else LLMError("no scripted reply left")
        if isinstance(reply, Exception):
            raise reply
        for word in reply.split(" "):
            self.pieces_sent += 1
            yield word + " "


class PacedChat(ScriptedChat):
    """A ScriptedChat that waits before each reply's first piece (``first_piece_s``, one per reply)."""

    def __init__(self, replies: Sequence[str | Exception], first_piece_s: Sequence[float]) -> None:
        super().__init__(replies)
        self.delays = list(first_piece_s)

    def stream(self, messages: Sequence[Message]) -> Iterator[str]:
        delay = self.delays.pop(0) if self.delays else 0.0
        pieces = super().stream(messages)
        time.sleep(delay)
        yield from pieces


class RecordingSpeaker:
    """A Speaker that records what it said: ``spoken`` has one item per finish(), ``pieces`` one per start()."""

    def __init__(self) -> None:
        self.spoken: list[str] = []
        self.pieces: list[str] = []
        self._started: list[str] = []
        self.slowed = 0

    def say(self, text: str) -> None:
        self.start(text)
        self.finish()

    def start(self, text: str) -> None:
        self.pieces.append(text)
        self._started.append(text)

    def finish(self, interrupt=None) -> bool:
        if self._started:
            self.spoken.append(" ".join(self._started))
        self._started = []
        return True

    def slower(self) -> None:
        self.slowed += 1


class ScriptedJudge:
    """A risk Judge that scores by phrase: ``{"pills": (0.1, 0.8)}`` gives (concern, crisis) to any text containing it.

    A phrase equal to the whole text wins; else the highest-scoring phrase found in it; a text
    with none scores ``default``.
    Records every text it was asked about in :attr:`seen`.
    """

    def __init__(self, phrases: dict[str, tuple[float, float]], default: tuple[float, float] = (0.01, 0.0)) -> None:
        from voicereflect.safety.judge import JudgeScore

        self._score = JudgeScore
        self.phrases = phrases
        self.default = default
        self.seen: list[str] = []

    def warm(self) -> bool:
        return True

    def scores(self, texts: Sequence[str]) -> list:
        self.seen.extend(texts)
        out = []
        for text in texts:
            exact = self.phrases.get(text.lower())
            found = [p for phrase, p in self.phrases.items() if phrase in text.lower()]
            concern, crisis = exact or max(found, key=sum, default=self.default)
            out.append(self._score(text, concern, crisis))
        return out
