"""The reflection loop: hear a turn, check it, reply, speak, save. Depends on interfaces only."""

from __future__ import annotations

import os
import re
import sys
import time
from dataclasses import dataclass, replace
from typing import TextIO

from voicereflect.errors import SpeechError, StoreError
from voicereflect.interfaces import InputChannel, SessionStore, Speaker
from voicereflect.reflection import Reflector
from voicereflect.safety import RiskChecker, crisis_message, spoken_crisis_message
from voicereflect.types import Turn, UserInput, now_iso

DISCLOSURE = "I'm voicereflect, an AI reflection tool: not a therapist and not a crisis service."
LLM_DOWN_NOTICE = "I can't reach the language model right now, so I'll continue with prepared questions."
END_PHRASES = re.compile(
    r"^\W*(please\s+)?(end|stop|finish|close)\s+(the\s+|this\s+|our\s+)?session\b"
    r"|\bthat'?s all for (today|now)\b|\bi'?m done for today\b|^\W*goodbye\W*$",
    re.IGNORECASE,
)


def is_end_request(text: str) -> bool:
    """True when the person asks to end ("end session", "that's all for today", ...)."""
    return bool(END_PHRASES.search(text.strip()))


class Console:
    """Prints both sides of the conversation to stdout and status lines to stderr."""

    def __init__(self, out: TextIO | None = None, status: TextIO | None = None) -> None:
        """Args: out: where the conversation goes (stdout). status: where status lines go (stderr)."""
        self.out = out or sys.stdout
        self.status_stream = status or sys.stderr

    def said(self, role: str, text: str) -> None:
        """Print one side of the conversation."""
        label = "you" if role == "user" else "voicereflect"
        print(f"{label}: {text}", file=self.out, flush=True)

    def status(self, text: str) -> None:
        """Print a status line such as "Listening..."."""
        print(text, file=self.status_stream, flush=True)

    def timing(self, stages: dict[str, float]) -> None:
        """With VOICEREFLECT_DEBUG=1, print how long each stage of a turn took (never any words)."""
        if os.environ.get("VOICEREFLECT_DEBUG") == "1":
            print("[timing] " + "  ".join(f"{k} {v:.2f}s" for k, v in stages.items()), file=self.status_stream, flush=True)


@dataclass
class SessionOutcome:
    """How a session ended."""

    session_id: str
    replies: int
    status: str


class ReflectionSession:
    """One conversation: greeting, then turns until the person ends it or input ends."""

    def __init__(
        self,
        *,
        inputs: InputChannel,
        reflector: Reflector,
        speaker: Speaker,
        store: SessionStore,
        console: Console,
        safety: RiskChecker | None = None,
        keep_audio: bool = True,
    ) -> None:
        """Wire the stages together; nothing runs until :meth:`run`."""
        self.inputs = inputs
        self.reflector = reflector
        self.speaker = speaker
        self.store = store
        self.console = console
        self.safety = safety or RiskChecker()
        self.keep_audio = keep_audio
        self.history: list[Turn] = []
        self.session_id = ""
        self.replies = 0
        self._speech_failed = False

    def run(self, max_turns: int | None = None, greet: bool = True) -> SessionOutcome:
        """Run until "end session", end of input, ``max_turns`` replies, or Ctrl-C.

        Every turn is saved the moment it exists, and the session is closed either way.
        """
        guide = self.reflector.guide
        self.session_id = self.store.start_session(guide.id)
        status = "complete"
        try:
            if greet:
                self._assistant(f"{DISCLOSURE} {guide.opening}", source="system")
            while max_turns is None or self.replies < max_turns:
                heard = self._next_input()
                if heard is None:
                    break
                if is_end_request(heard.text):
                    self._save_user(heard)
                    self._assistant(guide.closing, source="system")
                    break
                self.take_turn(heard)
        except KeyboardInterrupt:
            status = "stopped"
            self.console.status("Stopped. Your session is saved.")
        finally:
            self.store.end_session(self.session_id, status)
        return SessionOutcome(self.session_id, self.replies, status)

    def take_turn(self, heard: UserInput) -> Turn:
        """Handle one user turn: risk check first, save, then reply (or crisis resources)."""
        risk = self.safety.check(heard.text)
        events: tuple[dict, ...] = ()
        if risk.risk:
            events = ({"type": "safety", "at": now_iso(), "category": risk.category, "severity": risk.severity,
                       "resources_locale": risk.resources.locale if risk.resources else ""},)
        self._save_user(heard, events)
        if risk.risk:
            self.console.said("assistant", crisis_message(risk))
            self._assistant(spoken_crisis_message(risk), source="safety", show=False)
            return self.history[-1]
        self.console.status("Thinking...")
        heard_at = time.monotonic()
        reply = self.reflector.reply(self.history, self.replies)
        replied_at = time.monotonic()
        if reply.note == "llm-unavailable":
            self._assistant(LLM_DOWN_NOTICE, source="system", counts=False)
        reply_risk = self.safety.check(reply.text)
        if reply_risk.risk and reply.source == "llm":
            reply = replace(reply, text=self.reflector.guide.scripted_question(self.replies), source="scripted")
        turn = self._assistant(reply.text, source=reply.source)
        stages = {"reply": replied_at - heard_at, "speak": time.monotonic() - replied_at}
        if heard.utterance is not None and heard.utterance.speech_end_monotonic:
            stages = {"endpoint+stt": heard_at - heard.utterance.speech_end_monotonic, **stages}
        self.console.timing(stages)
        return turn

    def _next_input(self) -> UserInput | None:
        self.console.status("Listening...")
        return self.inputs.next_input()

    def _save_user(self, heard: UserInput, events: tuple[dict, ...] = ()) -> Turn:
        audio = None
        if heard.utterance is not None and self.keep_audio:
            try:
                audio = self.store.save_audio(self.session_id, heard.utterance.clip)
            except StoreError as exc:
                self.console.status(f"Could not save the recording ({exc}); the words are still saved.")
        turn = Turn(role="user", text=heard.text, started_at=heard.started_at, source=heard.source,
                    audio=audio, events=events)
        self.store.add_turn(self.session_id, turn)
        self.history.append(turn)
        self.console.said("user", heard.text)
        return turn

    def _assistant(self, text: str, *, source: str, show: bool = True, counts: bool = True) -> Turn:
        turn = Turn(role="assistant", text=text, source=source)
        self.store.add_turn(self.session_id, turn)
        self.history.append(turn)
        if show:
            self.console.said("assistant", text)
        if counts and source != "system":
            self.replies += 1
        self._speak(text)
        return turn

    def _speak(self, text: str) -> None:
        try:
            self.speaker.say(text)
        except SpeechError as exc:
            if not self._speech_failed:
                self.console.status(f"{exc} Continuing in text only.")
            self._speech_failed = True
