"""`voicereflect talk`: build the real pipeline (in parallel), run a session, clean up."""

from __future__ import annotations

import sys
import threading
import time

import click

from voicereflect.components import (
    ChatHandle, load_synthesizer, load_transcriber, load_turn_model, open_store, run_parallel, start_chat,
    user_guides_folder, warm_chat,
)
from voicereflect.config import Settings
from voicereflect.errors import AudioDeviceError, LLMError, StoreError
from voicereflect.inputs import SpokenInput, TypedInput
from voicereflect.guides import get_guide
from voicereflect.reflection import Reflector, SpokenTiming
from voicereflect.safety import RiskChecker
from voicereflect.safety.context import SessionRisk
from voicereflect.safety.plan import SafetyPlan
from voicereflect.session import Console, ReflectionSession
from voicereflect.store import TinyDBSessionStore
from voicereflect.turn_end import TurnEndJudge


def print_devices() -> None:
    """Print the audio devices sounddevice can see."""
    from voicereflect.audio import list_devices

    devices = list_devices()
    if not devices:
        click.echo("No audio devices found. Run `voicereflect doctor` for help.")
    for d in devices:
        marks = "".join([" (default input)" if d.get("default_input") else "", " (default output)" if d.get("default_output") else ""])
        click.echo(f"{d['index']:>3}  {d['name']}  in:{d['inputs']} out:{d['outputs']}{marks}")


def _start_chat_or_none(settings: Settings, console: Console) -> ChatHandle | None:
    """Start the model, in parallel with the other loads."""
    try:
        return start_chat(settings)
    except LLMError as exc:
        console.status(f"{exc} Continuing with the guide's prepared questions.")
        return None


def _open_voice(settings: Settings, text_mode: bool, speak: bool, console: Console) -> tuple[dict, bool]:
    """Open microphone and speaker; on failure offer text mode at a terminal, else fail."""
    from voicereflect.audio import MicrophoneListener, SounddevicePlayer, resolve_device

    parts: dict = {}
    try:
        if not text_mode:
            parts["listener"] = MicrophoneListener(device=settings.audio.input_device, settings=settings.endpointing)
            parts["listener"].start()  # fail now, not after the greeting, if there is no microphone
        if speak:
            try:
                resolve_device(settings.audio.output_device, "output")
            except AudioDeviceError as exc:
                if not text_mode:
                    raise
                console.status(f"{exc} Replies will be printed only.")
                return parts, text_mode
            parts["player"] = SounddevicePlayer(device=settings.audio.output_device)
    except AudioDeviceError as exc:
        for part in parts.values():
            part.close()
        if not sys.stdin.isatty():
            raise
        console.status(str(exc))
        if not click.confirm("Type instead of speaking (replies printed only)?", default=True, err=True):
            raise
        return {}, True
    return parts, text_mode


def recent_sessions(store, count: int = 3) -> str:
    """A few lines on the person's latest sessions (date, guide, first words), for continuity."""
    rows = [row for row in store.list_sessions() if row.first_words][-count:]
    return "\n".join(f"{row.started_at[:10]} ({row.guide}): {row.first_words}" for row in rows)


def run_talk(settings: Settings, *, max_turns: int | None, text_mode: bool, speak: bool, naive: bool = False) -> None:
    """Run one session with the real components that the settings name.

    ``naive`` (benchmarks only) turns off everything that makes replies fast: a fixed
    800 ms silence ends turns, each turn is transcribed whole with 30-second windows
    after it ends, and the whole reply is generated before it is synthesized and played.
    """
    started = time.monotonic()
    console = Console()
    if naive:
        settings = settings.replace("endpointing", silence_ms=800)
    guide = get_guide(settings.session.guide, user_guides_folder())
    store = open_store(settings)
    parts, text_mode = _open_voice(settings, text_mode, speak, console)
    if text_mode:
        speak = speak and "player" in parts
    safety = RiskChecker(locale=settings.session.locale)
    jobs = {"chat": lambda: _start_chat_or_none(settings, console), "safety": safety.warm}
    if not text_mode:
        jobs["transcriber"] = lambda: load_transcriber(settings, short_context=not naive)
        if not naive:
            jobs["turn_model"] = load_turn_model
    if speak:
        jobs["synthesizer"] = lambda: load_synthesizer(settings)
    console.status("Getting ready...")
    loaded = run_parallel(jobs)
    handle: ChatHandle | None = loaded["chat"]
    from voicereflect.tts import SilentSpeaker, VoiceSpeaker

    speaker = VoiceSpeaker(loaded["synthesizer"], parts["player"]) if speak else SilentSpeaker()
    if speak:
        parts["player"].open(loaded["synthesizer"].sample_rate)  # the stream runs from now on: no wake-up delay
    if "turn_model" in loaded:
        parts["judge"] = parts["listener"].judge = TurnEndJudge(model=loaded["turn_model"],
                                                                transcriber=loaded["transcriber"])
    inputs = TypedInput() if text_mode else SpokenInput(listener=parts["listener"], transcriber=loaded["transcriber"])
    session = ReflectionSession(
        inputs=inputs, speaker=speaker,
        reflector=Reflector(guide=guide, chat=handle.chat if handle else None,
                            recent_sessions=recent_sessions(store) if settings.session.continuity else "",
                            timing=SpokenTiming(settings.llm.first_sentence_s, settings.llm.question_s)),
        store=store, console=console, safety=SessionRisk(safety), safety_plan=_safety_plan(store, console),
        keep_audio=settings.storage.keep_audio, ask_rating=settings.session.ask_rating,
        recap=settings.session.recap, stream_replies=not naive,
    )
    if "judge" in parts:
        parts["judge"].on_words = session.prepare_reply
    if handle is not None:  # the system prompt is cached while the greeting plays: ready sooner
        threading.Thread(target=warm_chat, args=(handle, guide), name="voicereflect-warm", daemon=True).start()
    threading.Thread(target=safety.warm_check, name="voicereflect-warm-safety", daemon=True).start()
    console.status(f"Ready in {time.monotonic() - started:.1f} s ({handle.description if handle else 'prepared questions only'}).")
    try:
        outcome = session.run(max_turns=max_turns, greet=settings.session.greeting)
    finally:
        for part in parts.values():
            part.close()
        if handle is not None:
            handle.close()
    console.status(f"Session {outcome.session_id} saved ({outcome.replies} replies). See it with: voicereflect sessions show {outcome.session_id}")


def _safety_plan(store: TinyDBSessionStore, console: Console) -> SafetyPlan | None:
    """The person's safety plan, if they wrote one; a damaged file is said and the session goes on."""
    try:
        return SafetyPlan.from_dict(store.safety_plan())
    except StoreError as exc:
        console.status(f"Could not read your safety plan ({exc}); crisis resources still show.")
        return None
