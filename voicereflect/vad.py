"""Voice activity: Silero VAD scoring over onnxruntime, and the Endpointer state machine."""

from __future__ import annotations

import importlib.util
import math
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import numpy as np

from voicereflect.config import EndpointSettings
from voicereflect.errors import VoiceReflectError
from voicereflect.types import SAMPLE_RATE, AudioClip

FRAME_SAMPLES = 512
"""Samples per VAD frame: Silero v6 takes exactly 512 samples (32 ms) at 16 kHz."""

FRAME_S = FRAME_SAMPLES / SAMPLE_RATE
"""Duration of one frame in seconds (0.032)."""

CONTEXT_SAMPLES = 64
"""Samples of the previous frame that Silero expects in front of each frame."""

HYSTERESIS = 0.15
"""Once speech has started, silence means a probability below ``vad_threshold - HYSTERESIS``."""

_MODEL_FILE = "silero_vad_v6.onnx"


def silero_model_path() -> Path:
    """Path of the Silero VAD v6 ONNX file that faster-whisper ships.

    faster-whisper is located without importing it (only ``stt.py`` imports it).

    Raises:
        VoiceReflectError: faster-whisper is not installed or lacks the model file.
    """
    spec = importlib.util.find_spec("faster_whisper")
    if spec is None or spec.origin is None:
        raise VoiceReflectError(
            "The Silero VAD model comes with faster-whisper, which is not installed. "
            "Run: pip install 'faster-whisper>=1.2,<2'"
        )
    path = Path(spec.origin).parent / "assets" / _MODEL_FILE
    if not path.is_file():
        raise VoiceReflectError(
            f"{path} is missing; this faster-whisper is too old or damaged. "
            "Run: pip install --force-reinstall 'faster-whisper>=1.2,<2'"
        )
    return path


class SileroScorer:
    """Streaming Silero VAD: the speech probability of each 32 ms frame, state carried over.

    Args:
        model_path: the ONNX file; defaults to the one inside faster-whisper.
    """

    def __init__(self, *, model_path: str | Path | None = None) -> None:
        try:
            import onnxruntime
        except ImportError as exc:
            raise VoiceReflectError("Voice detection needs onnxruntime. Run: pip install onnxruntime") from exc
        path = Path(model_path) if model_path else silero_model_path()
        options = onnxruntime.SessionOptions()
        # One thread: a frame is tiny, and more threads only add wake-up latency.
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 4
        try:
            self._session = onnxruntime.InferenceSession(
                str(path), providers=["CPUExecutionProvider"], sess_options=options
            )
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise VoiceReflectError(f"Cannot load the VAD model {path}: {exc}. Reinstall faster-whisper.") from exc
        self.reset()

    @classmethod
    def shared_copy(cls, other: SileroScorer | None) -> SileroScorer:
        """A scorer with its own stream state, sharing ``other``'s loaded model (or a new one)."""
        if other is None:
            return cls()
        copy = cls.__new__(cls)
        copy._session = other._session
        copy.reset()
        return copy

    def reset(self) -> None:
        """Forget the previous audio: call this when the stream has a gap."""
        self._h = np.zeros((1, 1, 128), dtype=np.float32)
        self._c = np.zeros((1, 1, 128), dtype=np.float32)
        self._context = np.zeros(CONTEXT_SAMPLES, dtype=np.float32)

    def score(self, frame: np.ndarray) -> float:
        """Speech probability of the next frame of the stream.

        Args:
            frame: exactly 512 float32 samples at 16 kHz, following the previous frame.

        Returns:
            Probability in [0, 1] that the frame is speech.
        """
        frame = np.asarray(frame, dtype=np.float32).reshape(-1)
        if frame.shape[0] != FRAME_SAMPLES:
            raise ValueError(f"SileroScorer.score needs {FRAME_SAMPLES} samples, got {frame.shape[0]}.")
        batch = np.concatenate([self._context, frame])[np.newaxis, :]
        probs, self._h, self._c = self._session.run(None, {"input": batch, "h": self._h, "c": self._c})
        self._context = frame[-CONTEXT_SAMPLES:].copy()
        return float(np.asarray(probs).reshape(-1)[0])


Reason = Literal["silence", "finished", "max_silence", "max_turn", "end_of_input"]


PAUSE_FRAMES = 2
"""Silent frames (64 ms) after which a pause is announced to the judge, before it must decide."""


class TurnJudge(Protocol):
    """Decides at a pause whether the person has finished their turn (see turn_end.py)."""

    def paused(self, turn: np.ndarray) -> None:
        """A pause has begun (``PAUSE_FRAMES`` of silence): start work the verdict will need. Must not block."""

    def finished(self, turn: np.ndarray) -> bool:
        """True if the turn so far (16 kHz samples, ending in the pause) sounds and reads finished."""

    def resumed(self, pause_frames: int) -> None:
        """The person went on speaking after a pause of ``pause_frames`` silent frames (announced, perhaps judged)."""


@dataclass(frozen=True, eq=False)
class EndpointEvent:
    """A turn the Endpointer judged complete.

    Frame indexes count frames pushed since the Endpointer was created or reset.

    Attributes:
        clip: pre-roll + speech + trailing silence, 16 kHz.
        first_voiced_frame: the frame whose probability opened the turn.
        last_voiced_frame: the last frame still counted as speech.
        end_frame: the frame on which the turn ended.
        reason: "silence" (silence_ms after speech, no judge), "finished" (the judge
            heard a finished turn at a pause), "max_silence" (max_silence_ms after speech
            that sounded unfinished), "max_turn" (max_turn_s reached) or "end_of_input"
            (:meth:`Endpointer.flush`).
    """

    clip: AudioClip
    first_voiced_frame: int
    last_voiced_frame: int
    end_frame: int
    reason: Reason

    @property
    def speech_start_s(self) -> float:
        """Stream time (seconds) at which the first voiced frame began."""
        return self.first_voiced_frame * FRAME_S

    @property
    def speech_end_s(self) -> float:
        """Stream time (seconds) at which the last voiced frame ended."""
        return (self.last_voiced_frame + 1) * FRAME_S

    @property
    def trailing_s(self) -> float:
        """Seconds between the end of speech and the end of the turn (the endpointing delay)."""
        return (self.end_frame - self.last_voiced_frame) * FRAME_S


def _frames(ms: float, minimum: int = 1) -> int:
    return max(minimum, math.ceil(ms / (FRAME_S * 1000) - 1e-9))


class Endpointer:
    """Decides when a turn has ended, from one speech probability per 32 ms frame.

    A turn opens on a frame with probability >= ``vad_threshold``. Once open, a frame
    counts as silence when its probability is below ``vad_threshold - 0.15``; a frame at
    or above the threshold cancels the silence run, and frames in between continue
    whatever was happening. Turns with less than ``min_speech_ms`` of speech are dropped.

    Without a judge the turn ends after ``silence_ms`` of silence. With one, the judge is
    asked at ``silence_ms`` into each pause and again every ``second_look_ms`` (a voice can
    trail off at the end of a finished sentence): a finished turn ends there, an unfinished
    one stays open until the person goes on or the silence reaches ``max_silence_ms``.
    Either way a turn ends when it reaches ``max_turn_s``.

    Args:
        settings: thresholds and windows from ``[endpointing]``.
        judge: decides at each pause whether the turn is finished (semantic end of turn).
    """

    def __init__(self, settings: EndpointSettings | None = None, judge: TurnJudge | None = None) -> None:
        self.settings = settings or EndpointSettings()
        self.judge = judge
        self._silence_frames = _frames(self.settings.silence_ms)
        self._max_silence_frames = max(self._silence_frames, _frames(self.settings.max_silence_ms))
        self._second_look_frames = _frames(self.settings.second_look_ms)
        self._min_speech_frames = _frames(self.settings.min_speech_ms)
        self._max_turn_frames = _frames(self.settings.max_turn_s * 1000)
        self._preroll: deque[np.ndarray] = deque(maxlen=_frames(self.settings.preroll_ms, minimum=0))
        self.frame_index = -1
        self._reset_turn()

    def _reset_turn(self) -> None:
        self._turn: list[np.ndarray] = []
        self._in_turn = False
        self._voiced = 0
        self._silence_run = 0
        self._first_voiced = -1
        self._last_voiced = -1
        self._pause_announced = False

    def reset(self) -> None:
        """Drop any open turn, the pre-roll and the frame count (e.g. after a gap in the audio)."""
        self._preroll.clear()
        self.frame_index = -1
        self._reset_turn()

    @property
    def in_turn(self) -> bool:
        """A possible turn is open (it may still be dropped as a blip)."""
        return self._in_turn

    @property
    def speech_started(self) -> bool:
        """The open turn has at least ``min_speech_ms`` of speech: the person is talking."""
        return self._in_turn and self._voiced >= self._min_speech_frames

    @property
    def turn_frames(self) -> list[np.ndarray]:
        """The frames of the open turn so far, pre-roll included (empty outside a turn)."""
        return list(self._turn) if self._in_turn else []

    def push(self, probability: float, frame: np.ndarray) -> EndpointEvent | None:
        """Feed the next frame and its speech probability.

        Args:
            probability: speech probability of ``frame`` (e.g. from :class:`SileroScorer`).
            frame: the frame's float32 samples (512 at 16 kHz); kept by reference, so
                pass an array that the caller will not overwrite.

        Returns:
            An EndpointEvent when this frame ends a turn, else None.
        """
        self.frame_index += 1
        threshold = self.settings.vad_threshold
        if not self._in_turn:
            if probability < threshold:
                self._preroll.append(frame)
                return None
            self._in_turn = True
            self._turn = list(self._preroll)
            self._preroll.clear()
            self._first_voiced = self.frame_index
        self._turn.append(frame)
        silence_below = max(threshold - HYSTERESIS, 0.01)  # as faster-whisper's neg_threshold
        if probability >= threshold or (probability >= silence_below and self._silence_run == 0):
            if self._pause_announced and self.judge is not None:
                self._pause_announced = False
                self.judge.resumed(self._silence_run)
            self._silence_run = 0
            self._voiced += 1
            self._last_voiced = self.frame_index
        else:
            self._silence_run += 1
        reason = self._pause_verdict()
        if reason is not None:
            return self._finish(reason)
        if self.frame_index - self._first_voiced + 1 >= self._max_turn_frames:
            return self._finish("max_turn")
        return None

    def _pause_verdict(self) -> Reason | None:
        """Whether the current silence ends the turn, asking the judge at silence_ms and every second_look_ms."""
        if self.judge is not None and self._silence_run == min(PAUSE_FRAMES, self._silence_frames) \
                and self._voiced >= self._min_speech_frames:
            self._pause_announced = True
            self.judge.paused(np.concatenate(self._turn))
        if self._silence_run < self._silence_frames:
            return None
        if self.judge is None or self._voiced < self._min_speech_frames:
            return "silence"  # no judge, or a blip (dropped by _finish)
        if self._silence_run >= self._max_silence_frames:
            return "max_silence"
        run, every = self._silence_run, self._second_look_frames
        asked = run == self._silence_frames or (run > self._silence_frames and run % every == 0)
        if asked and self.judge.finished(np.concatenate(self._turn)):
            return "finished"
        return None

    def flush(self) -> EndpointEvent | None:
        """End of input: return the open turn if it holds enough speech, and reset."""
        event = self._finish("end_of_input") if self._in_turn else None
        self.reset()
        return event

    def _finish(self, reason: Reason) -> EndpointEvent | None:
        event = None
        if self._voiced >= self._min_speech_frames:
            event = EndpointEvent(
                clip=AudioClip(np.concatenate(self._turn).astype(np.float32, copy=False)),
                first_voiced_frame=self._first_voiced,
                last_voiced_frame=self._last_voiced,
                end_frame=self.frame_index,
                reason=reason,
            )
        else:
            # A blip: its tail becomes pre-roll, so speech right after it keeps its onset.
            self._preroll.extend(self._turn)
        self._reset_turn()
        return event


def iter_frames(samples: np.ndarray) -> Iterator[np.ndarray]:
    """Split samples into 512-sample float32 frames, zero-padding the last one."""
    samples = np.asarray(samples, dtype=np.float32).reshape(-1)
    for start in range(0, len(samples), FRAME_SAMPLES):
        frame = samples[start : start + FRAME_SAMPLES]
        if len(frame) < FRAME_SAMPLES:
            frame = np.pad(frame, (0, FRAME_SAMPLES - len(frame)))
        yield frame


def iter_segments(
    clip: AudioClip, scorer: SileroScorer, settings: EndpointSettings | None = None
) -> Iterator[EndpointEvent]:
    """Run the scorer and a fresh Endpointer over a whole 16 kHz clip, yielding each turn.

    A turn still open at the end of the clip is yielded too (reason "end_of_input").
    """
    if clip.sample_rate != SAMPLE_RATE:
        raise ValueError(f"Segmenting needs {SAMPLE_RATE} Hz audio, got {clip.sample_rate} Hz; resample first.")
    scorer.reset()
    endpointer = Endpointer(settings)
    for frame in iter_frames(clip.samples):
        event = endpointer.push(scorer.score(frame), frame)
        if event is not None:
            yield event
    event = endpointer.flush()
    if event is not None:
        yield event


def segment_clip(
    clip: AudioClip, scorer: SileroScorer, settings: EndpointSettings | None = None
) -> list[EndpointEvent]:
    """All turns in a clip (see :func:`iter_segments`)."""
    return list(iter_segments(clip, scorer, settings))
