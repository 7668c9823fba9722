"""Where the person's turns come from: speech (listen, then transcribe) or typed lines."""

from __future__ import annotations

import sys
from typing import Any, Callable, TextIO

from voicereflect.errors import TranscriptionError
from voicereflect.interfaces import Listener, Transcriber
from voicereflect.types import UserInput, now_iso


class SpokenInput:
    """An InputChannel that listens for one utterance and transcribes it locally."""

    def __init__(self, *, listener: Listener, transcriber: Transcriber,
                 on_transcribed: Callable[[UserInput], None] | None = None) -> None:
        """Args: listener: hears one utterance. transcriber: speech to text. on_transcribed: timing hook."""
        self.listener = listener
        self.transcriber = transcriber
        self.on_transcribed = on_transcribed

    def record_to(self, open_recording: Callable[[], Any]) -> None:
        """Stream each utterance to a file from ``open_recording`` while it is spoken, if the listener can."""
        if hasattr(self.listener, "record_to"):
            self.listener.record_to = open_recording

    def watch(self, reference: Any, *, calibrate: bool = False) -> Any:
        """Listen for the person talking over the assistant, if the listener can (else None)."""
        watch = getattr(self.listener, "watch", None)
        return watch(reference, calibrate=calibrate) if watch is not None else None

    def next_input(self) -> UserInput | None:
        """The next non-empty transcribed utterance; None when the audio source has ended."""
        while True:
            utterance = self.listener.listen()
            if utterance is None:
                return None
            try:
                text = utterance.text if utterance.text is not None else self.transcriber.transcribe(utterance.clip).text
                text = text.strip()
            except TranscriptionError as exc:  # keep the recording; the words can be recovered later
                return UserInput(text="", started_at=utterance.started_at, source="voice", utterance=utterance,
                                 failure=str(exc))
            if not text:
                if utterance.recording is not None:
                    utterance.recording.unlink(missing_ok=True)
                continue  # a cough or a door: nothing to answer
            heard = UserInput(text=text, started_at=utterance.started_at, source="voice", utterance=utterance)
            if self.on_transcribed:
                self.on_transcribed(heard)
            return heard


class TypedInput:
    """An InputChannel over lines of text: a prompt at a terminal, one turn per line otherwise."""

    def __init__(self, stream: TextIO | None = None, prompt_stream: TextIO | None = None) -> None:
        """Args: stream: where lines come from (stdin). prompt_stream: where "> " goes at a terminal."""
        self.stream = stream or sys.stdin
        self.prompt_stream = prompt_stream or sys.stderr

    def next_input(self) -> UserInput | None:
        """The next non-blank line; None at end of input."""
        interactive = self.stream.isatty()
        while True:
            if interactive:
                print("> ", end="", file=self.prompt_stream, flush=True)
            line = self.stream.readline()
            if not line:
                return None
            text = line.strip()
            if text:
                return UserInput(text=text, started_at=now_iso(), source="text")
