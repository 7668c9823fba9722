"""`voicereflect doctor`: check each real component and say how to fix what fails."""

from __future__ import annotations

import os
from collections.abc import Callable

from voicereflect.config import Settings, data_home
from voicereflect.errors import VoiceReflectError


def _check_devices(settings: Settings) -> str:
    from voicereflect.audio import resolve_device

    mic = resolve_device(settings.audio.input_device, "input")
    out = resolve_device(settings.audio.output_device, "output")
    return f"microphone {mic!r}, speaker {out!r}"


def _check_stt(settings: Settings) -> str:
    from voicereflect.components import load_transcriber

    load_transcriber(settings)
    return f"faster-whisper model {settings.stt.model!r} loads"


def _check_llm(settings: Settings) -> str:
    from voicereflect.components import start_chat
    from voicereflect.types import Message

    handle = start_chat(settings, check_only=True)
    try:
        text = handle.chat.complete([Message("user", "Say hello in three words.")])
    finally:
        handle.close()
    if not text.strip():
        raise VoiceReflectError("The language model answered with nothing. Check [llm] model.")
    return handle.description


def _check_tts(settings: Settings) -> str:
    from voicereflect.components import load_synthesizer

    synthesizer = load_synthesizer(settings)
    return f"voice {type(synthesizer).__name__} synthesizes"


def _check_data(settings: Settings) -> str:
    from voicereflect.components import open_store

    from voicereflect.storage import ensure_dir

    folder = data_home(settings)
    ensure_dir(folder)
    store = open_store(settings)
    count = len(store.list_sessions())
    if not os.access(folder, os.W_OK):
        raise VoiceReflectError(f"Data folder {folder} is not writable. Fix its permissions or set VOICEREFLECT_HOME.")
    return f"{folder} ({count} sessions)"


CHECKS: list[tuple[str, Callable[[Settings], str]]] = [
    ("audio devices", _check_devices),
    ("speech-to-text", _check_stt),
    ("language model", _check_llm),
    ("voice", _check_tts),
    ("data folder", _check_data),
]


def run_checks(settings: Settings, echo: Callable[[str], None]) -> int:
    """Run every check, printing ok or the problem and its fix; return the number that failed."""
    failures = 0
    for name, check in CHECKS:
        try:
            echo(f"ok    {name}: {check(settings)}")
        except (VoiceReflectError, OSError) as exc:
            failures += 1
            echo(f"FAIL  {name}: {exc}")
    return failures
