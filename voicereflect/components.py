"""The composition root's builders: the one place real adapters are constructed.

Heavy models load in parallel (speech-to-text, VAD, the voice, the embedded LLM), so
startup costs roughly the slowest of them rather than their sum.
"""

from __future__ import annotations

import os
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from voicereflect.config import Settings, data_home
from voicereflect.errors import ConfigError, EncryptionError, LLMError, VoiceReflectError
from voicereflect.llm import OpenAIChat, is_loopback_url
from voicereflect.guides import Guide
from voicereflect.interfaces import ChatConnection
from voicereflect.reflection import system_prompt
from voicereflect.types import Message


_SEALS: dict[Path, Any] = {}


def open_store(settings: Settings):
    """The session store under the data folder, unlocked (once per process) if it is encrypted."""
    from voicereflect.encryption import open_data_folder
    from voicereflect.store import TinyDBSessionStore

    home = data_home(settings)
    if home not in _SEALS:
        _SEALS[home] = open_data_folder(home, encrypt=settings.storage.encrypt, passphrase=_ask_passphrase)
    return TinyDBSessionStore(home, seal=_SEALS[home])


def _ask_passphrase(new: bool) -> str:
    from voicereflect.crypto import passphrase_from_env_or_prompt

    if new:
        _to_stderr("Encryption is on ([storage] encrypt): choose a passphrase. Without it nothing saved can be read.")
    return passphrase_from_env_or_prompt(confirm=new)


def user_guides_folder() -> Path:
    """Where users put their own guide TOML files."""
    from platformdirs import user_config_dir

    return Path(user_config_dir("voicereflect")) / "guides"


@dataclass
class ChatHandle:
    """A ready chat model plus whatever must be stopped when the session ends."""

    chat: ChatConnection
    server: Any = None
    description: str = ""

    def close(self) -> None:
        """End the model's open requests, then stop the embedded server, if one was started."""
        self.chat.close()
        if self.server is not None:
            self.server.stop()


def _to_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def start_chat(settings: Settings, *, check_only: bool = False) -> ChatHandle:
    """Start (embedded) or connect to (any other base_url) the language model.

    A base_url off this machine gets the privacy notice on stderr before anything is sent,
    and ``[privacy] redact`` applied to every message. ``check_only`` (``doctor``) says a
    test message is sent instead, leaving the full notice for the first real session.
    """
    llm = settings.llm
    sampling = {"temperature": llm.temperature, "max_tokens": llm.max_tokens}
    if llm.base_url == "embedded":
        from voicereflect.embedded import EmbeddedLlamaServer

        server = EmbeddedLlamaServer(model_path=llm.model_path, threads=llm.threads,
                                     context_tokens=llm.context_tokens).start()
        chat = OpenAIChat(base_url=server.base_url, api_key=server.api_key, model=server.model_name,
                          sampling=sampling, timeout_s=llm.timeout_s,
                          first_token_timeout_s=llm.first_token_timeout_s)
        return ChatHandle(chat, server, f"embedded llama.cpp ({server.model_name}) at {server.address}")
    if settings.privacy.local_only and not is_loopback_url(llm.base_url):
        raise ConfigError(
            f"[llm] base_url {llm.base_url} is not on this machine, and [privacy] local_only is on. "
            "Set local_only = false in your config to send transcripts there."
        )
    api_key = os.environ.get(llm.api_key_env, "") if llm.api_key_env else ""
    chat = OpenAIChat(base_url=llm.base_url, api_key=api_key, model=llm.model, sampling=sampling,
                      timeout_s=llm.timeout_s, first_token_timeout_s=llm.first_token_timeout_s)
    if not is_loopback_url(llm.base_url):
        from voicereflect.privacy import guard_remote_chat

        chat = guard_remote_chat(chat, base_url=llm.base_url, words=settings.privacy.redact,
                                 data_folder=data_home(settings), announce=_to_stderr, check_only=check_only)
    return ChatHandle(chat, None, f"{llm.base_url} ({llm.model or 'default model'})")


def warm_chat(handle: ChatHandle, guide: Guide) -> None:
    """Send the system prompt once so the server caches its prefix (first reply is then fast)."""
    try:
        handle.chat.complete([Message("system", system_prompt(guide)), Message("user", "Hello.")])
    except LLMError:
        pass  # the session will say so when it first needs the model


def load_transcriber(settings: Settings, *, short_context: bool = True):
    """faster-whisper, loaded and warmed."""
    from voicereflect.stt import WhisperTranscriber

    transcriber = WhisperTranscriber(settings.stt, local_only=settings.privacy.local_only, short_context=short_context)
    transcriber.warm()
    return transcriber


def load_turn_model():
    """The smart-turn end-of-turn model, warmed with one judgement."""
    import numpy as np

    from voicereflect.smart_turn import SmartTurnModel

    model = SmartTurnModel()
    model.complete_probability(np.zeros(8000, np.float32))
    return model


def load_synthesizer(settings: Settings):
    """The configured voice, warmed with one short synthesis."""
    from voicereflect.tts import build_synthesizer

    synthesizer = build_synthesizer(settings.tts)
    synthesizer.synthesize("Hello.")
    return synthesizer


def run_parallel(jobs: dict[str, Any]) -> dict[str, Any]:
    """Run named zero-argument callables in threads; return their results (re-raising the first error)."""
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        futures = {name: pool.submit(job) for name, job in jobs.items()}
        return {name: future.result() for name, future in futures.items()}


def housekeeping(settings: Settings) -> list[str]:
    """Before a command: recover sessions a crash cut off, then apply ``[storage] audio_days``.

    Returns lines for the person (empty when there was nothing to do). Never raises a
    VoiceReflectError: the command itself still runs, and ``sessions recover`` retries.
    """
    from voicereflect.manage import apply_audio_retention
    from voicereflect.recovery import cut_off_sessions, recover

    if not (data_home(settings) / "index").is_dir():
        return []
    lines = []
    try:
        store = open_store(settings)
        if cut_off_sessions(store):
            lines.append(recover(store, lambda: load_transcriber(settings)).summary())
        if settings.storage.audio_days:
            removed = apply_audio_retention(store, settings.storage.audio_days)
            if removed:
                lines.append(f"Removed {removed} recording(s) older than {settings.storage.audio_days} days "
                             "([storage] audio_days); transcripts kept.")
    except EncryptionError:
        raise  # the command cannot read the folder either
    except (VoiceReflectError, OSError) as exc:
        lines.append(f"Could not check for interrupted sessions: {exc}")
    return lines
