"""Microphone and speaker through sounddevice, and listeners that yield whole utterances.

This is the only module that imports sounddevice, and only inside functions, so that
``voicereflect --help`` stays fast and a missing PortAudio becomes an install hint.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Literal

import numpy as np

from voicereflect.config import EndpointSettings
from voicereflect.debug import debug_line
from voicereflect.errors import AudioDeviceError, VoiceReflectError
from voicereflect.recording import PartialRecording
from voicereflect.types import SAMPLE_RATE, AudioClip, Utterance, now_iso
from voicereflect.errors import TranscriptionError
from voicereflect.vad import FRAME_S, FRAME_SAMPLES, EndpointEvent, Endpointer, SileroScorer, iter_segments

_LIST_HINT = ("Run 'voicereflect talk --list-devices' and set [audio] {kind}_device in config.toml "
              "(or change the system's default {kind}).")


def _sounddevice() -> Any:
    try:
        import sounddevice
    except OSError as exc:  # sounddevice raises OSError when libportaudio is missing
        raise AudioDeviceError(
            f"The PortAudio library is missing ({exc}). Install it: sudo apt-get install libportaudio2"
        ) from exc
    except ImportError as exc:
        raise AudioDeviceError("sounddevice is not installed. Run: pip install 'sounddevice>=0.5,<0.6'") from exc
    return sounddevice


def resample(samples: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Resample mono float32 audio by linear interpolation (good enough for speech)."""
    samples = np.asarray(samples, dtype=np.float32).reshape(-1)
    if from_rate == to_rate or len(samples) == 0:
        return samples
    count = int(round(len(samples) * to_rate / from_rate))
    positions = np.arange(count, dtype=np.float64) * (from_rate / to_rate)
    return np.interp(positions, np.arange(len(samples)), samples).astype(np.float32)


def list_devices() -> list[dict[str, Any]]:
    """Every audio device PortAudio sees, for ``talk --list-devices``.

    Returns:
        One dict per device: index, name, inputs, outputs (channel counts),
        default_input, default_output (bools) and sample_rate.
    """
    sd = _sounddevice()
    try:
        devices = sd.query_devices()
        default_in, default_out = sd.default.device
    except sd.PortAudioError as exc:
        raise AudioDeviceError(f"Cannot list audio devices: {exc}. Is a sound server running?") from exc
    return [
        {
            "index": index,
            "name": device["name"],
            "inputs": device["max_input_channels"],
            "outputs": device["max_output_channels"],
            "default_input": index == default_in,
            "default_output": index == default_out,
            "sample_rate": device["default_samplerate"],
        }
        for index, device in enumerate(devices)
    ]


def resolve_device(spec: str, kind: Literal["input", "output"]) -> int:
    """The index of the device that ``spec`` names.

    Args:
        spec: "" for the system default, a device index, or part of a device's name
            (case-insensitive; an exact name wins, else the first match).
        kind: "input" for a microphone, "output" for a speaker.

    Raises:
        AudioDeviceError: no device of that kind matches.
    """
    channels = "inputs" if kind == "input" else "outputs"
    devices = [d for d in list_devices() if d[channels] > 0]
    hint = _LIST_HINT.format(kind=kind)
    spec = str(spec).strip()
    if not devices:
        raise AudioDeviceError(f"No {kind} device found. Connect one (or start PulseAudio). {hint}")
    if not spec:
        matches, problem = [d for d in devices if d[f"default_{kind}"]], f"No default {kind} device."
    elif spec.isdigit():
        matches, problem = [d for d in devices if d["index"] == int(spec)], f"No {kind} device has index {spec}."
    else:
        matches = [d for d in devices if d["name"].lower() == spec.lower()]
        matches += [d for d in devices if spec.lower() in d["name"].lower()]
        problem = f"No {kind} device matches '{spec}'."
    if not matches:
        raise AudioDeviceError(f"{problem} {hint}")
    return matches[0]["index"]


class MicrophoneListener:
    """Hears whole utterances from the microphone: Silero VAD plus the Endpointer.

    The stream stays open between calls to :meth:`listen`; its callback only queues
    copies of 32 ms frames. :meth:`listen` first discards everything queued while
    nobody was listening (what the program said itself, the echo guard) and the first
    ``echo_tail_ms`` after it starts.

    Args:
        settings: endpointing thresholds.
        device: input device spec for :func:`resolve_device` ("" = system default).
        scorer: a SileroScorer to reuse; one is created if omitted.
        on_speech_start: called (on the listening thread) when the person starts talking.
        echo_tail_ms: audio ignored at the start of each listen.
        judge: decides at each pause whether the turn is over, and transcribes it while it
            is spoken (a :class:`voicereflect.turn_end.TurnEndJudge`); without one a turn
            ends after ``silence_ms`` and is returned untranscribed.

    Set :attr:`record_to` to stream each utterance to disk while it is spoken: it is called
    when speech starts and returns a :class:`voicereflect.recording.PartialRecording`.
    """

    stall_timeout_s = 2.0
    """No frames for this long means the microphone has stopped."""

    startup_timeout_s = 5.0
    """Wait this long for the first frame: some sources (Bluetooth, PulseAudio null sinks) start slowly."""

    max_queued_s = 30.0
    """Audio kept while nobody listens; later frames are dropped (listen() discards them all)."""

    def __init__(
        self,
        *,
        settings: EndpointSettings | None = None,
        device: str = "",
        scorer: SileroScorer | None = None,
        on_speech_start: Callable[[], None] | None = None,
        echo_tail_ms: int = 150,
        judge: Any = None,
    ) -> None:
        self.settings = settings or EndpointSettings()
        self.device = device
        self.on_speech_start = on_speech_start
        self.echo_tail_ms = echo_tail_ms
        self.judge = judge
        self.overflows = 0
        self.frames_received = 0
        self._scorer = scorer
        self._queue: queue.Queue[np.ndarray] = queue.Queue(maxsize=int(self.max_queued_s / FRAME_S))
        self._stream: Any = None
        self.record_to: Callable[[], PartialRecording] | None = None
        self.record_error = ""  # why streaming to disk stopped, if it did
        self.replay: list[np.ndarray] = []
        """Frames a :class:`SpeechWatch` kept: the next listen() starts with them (speech over a reply)."""
        self.echo_coupling = 1.0
        """How loud the speaker comes back into the microphone, relative to what is played (calibrated)."""

    def start(self) -> None:
        """Open the input stream (listen() does this on first use)."""
        if self._stream is not None:
            return
        sd = _sounddevice()
        index = resolve_device(self.device, "input")
        try:
            stream = sd.InputStream(
                device=index, samplerate=SAMPLE_RATE, channels=1, dtype="float32",
                blocksize=FRAME_SAMPLES, latency="low", callback=self._callback,
            )
            stream.start()
        except (sd.PortAudioError, ValueError) as exc:
            raise AudioDeviceError(
                f"Cannot open the microphone (device {index}): {exc}. {_LIST_HINT.format(kind='input')}"
            ) from exc
        self._stream = stream
        if self._scorer is None:
            self._scorer = SileroScorer()

    def _callback(self, indata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        # Runs on PortAudio's thread: no blocking and no model work here.
        if status.input_overflow:
            self.overflows += 1
        self.frames_received += 1
        # Full only when nobody has listened for max_queued_s; listen() discards those anyway.
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(indata[:, 0].copy())

    def _drain(self) -> None:
        with contextlib.suppress(queue.Empty):
            while True:
                self._queue.get_nowait()

    def _next_frames(self) -> Iterator[np.ndarray]:
        # With a fixed blocksize PortAudio always delivers whole 512-sample frames.
        while True:
            timeout = self.stall_timeout_s if self.frames_received else self.startup_timeout_s
            try:
                yield self._queue.get(timeout=timeout)
            except queue.Empty:
                raise AudioDeviceError(
                    f"The microphone stopped sending audio (nothing for {timeout:g} s). "
                    f"Check it is connected and not in use elsewhere. {_LIST_HINT.format(kind='input')}"
                ) from None

    def listen(self) -> Utterance:
        """Block until the person has spoken one whole turn, and return it.

        If the microphone stops while the person is talking, the turn so far is returned
        (so its words are saved like any other's) and the next call raises.

        Raises:
            AudioDeviceError: the microphone cannot be opened or stopped sending audio.
        """
        self.start()
        replay, self.replay = self.replay, []
        if not replay:
            self._drain()  # the echo guard: what was heard while nobody listened is dropped
        scorer = self._scorer or SileroScorer()
        scorer.reset()
        if self.judge is not None:
            self.judge.begin()
        endpointer = Endpointer(self.settings, judge=self.judge)
        started_at: str | None = None
        recording: PartialRecording | None = None
        tail_frames = 0 if replay else round(self.echo_tail_ms / (FRAME_S * 1000))
        try:
            for frame in itertools.chain(replay, itertools.islice(self._next_frames(), tail_frames, None)):
                was_talking = endpointer.speech_started
                event = endpointer.push(scorer.score(frame), frame)
                recording = self._stream_frame(recording, endpointer, frame, ended=event is not None)
                if event is not None:
                    behind_s = self._queue.qsize() * FRAME_S  # frames heard but not yet looked at
                    debug_line(f"[turn] ended ({event.reason}); the listener was {behind_s * 1000:.0f} ms behind")
                    end_monotonic = time.monotonic() - event.trailing_s - behind_s
                    path = recording.finish() if recording is not None else None
                    return Utterance(event.clip, started_at or now_iso(), now_iso(),
                                     speech_end_monotonic=end_monotonic, recording=path, text=self._text_of(event))
                started_at = (started_at or now_iso()) if endpointer.in_turn else None  # None again after a blip
                if endpointer.speech_started and not was_talking and self.on_speech_start is not None:
                    self.on_speech_start()
        except AudioDeviceError:
            event = endpointer.flush()  # unplugged mid-sentence: what was said so far is still a turn
            if event is None:
                if recording is not None:
                    recording.discard()
                raise
            path = recording.finish() if recording is not None else None
            return Utterance(event.clip, started_at or now_iso(), now_iso(), recording=path)
        raise AssertionError("unreachable: the frame stream never ends")

    def _text_of(self, event: EndpointEvent) -> str | None:
        """The turn's transcript from the judge (mostly made during its pauses), or None."""
        if self.judge is None:
            return None
        last_voiced = len(event.clip.samples) - (event.end_frame - event.last_voiced_frame) * FRAME_SAMPLES
        try:
            return self.judge.text_of(event.clip.samples, last_voiced)
        except TranscriptionError:
            return None  # SpokenInput transcribes it again, and keeps the recording if that fails too

    def watch(self, reference: Any, *, calibrate: bool = False) -> SpeechWatch:
        """Listen while the assistant speaks, on a thread: see :class:`SpeechWatch`.

        Args:
            reference: the player (anything with ``level_since(monotonic)``), to tell the
                person's voice from the assistant's own coming back into the microphone.
            calibrate: measure how much of the speaker reaches the microphone (during the
                greeting, when the person is listening) instead of watching for speech.
        """
        self.start()
        # No drain: what was queued since the last turn ended was heard before anything played,
        # so it cannot be the assistant's voice, and the person may already be talking again.
        watch = SpeechWatch(self, reference, calibrate=calibrate)
        watch.start()
        return watch

    def _stream_frame(self, recording: PartialRecording | None, endpointer: Endpointer, frame: np.ndarray,
                      *, ended: bool) -> PartialRecording | None:
        """Keep the streamed recording in step with the endpointer's open turn."""
        if recording is None:
            if endpointer.in_turn and self.record_to is not None:
                try:
                    recording = self.record_to()
                    recording.append(np.concatenate(endpointer.turn_frames))
                except (OSError, VoiceReflectError) as exc:
                    # The turn is still heard and saved whole at its end; only the streaming stops.
                    self.record_to, self.record_error = None, str(exc)
                    return None
            return recording
        if ended or endpointer.in_turn:
            recording.append(frame)
            return recording
        recording.discard()  # a blip, not a turn
        return None

    def close(self) -> None:
        """Close the input stream."""
        if self._stream is not None:
            self._stream.close(ignore_errors=True)
            self._stream = None

    def __enter__(self) -> MicrophoneListener:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class SpeechWatch:
    """Listens while the assistant speaks, and notices when the person starts talking over it.

    Runs Silero VAD on a thread over the microphone's frames. Speech counts as the person's
    (barge-in) after ``onset_frames`` voiced frames in a row that are also louder than the
    assistant's own voice could be in the microphone: ``margin`` times the loudest block
    played in the last ``echo_window_s``, scaled by the listener's calibrated
    ``echo_coupling``. The frames from the pre-roll before the onset on are handed to the
    listener's next listen(), so the person's words are kept from their start.
    """

    onset_frames = 2
    """Voiced frames in a row (64 ms) that make a barge-in."""

    margin = 2.0
    """How much louder than the loudest possible echo the person must be (6 dB)."""

    echo_window_s = 0.5
    """The speaker's output this far back can still be arriving in the microphone."""

    def __init__(self, listener: MicrophoneListener, reference: Any, *, calibrate: bool) -> None:
        self.listener = listener
        self.reference = reference
        self.calibrate = calibrate
        self.interrupted = threading.Event()
        """Set the moment the person starts talking over the assistant."""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="voicereflect-watch", daemon=True)
        self._ratios: list[float] = []

    def start(self) -> None:
        """Start watching."""
        self._thread.start()

    def stop(self) -> None:
        """Stop watching (after the reply ended or was cut short); calibrates, if asked to."""
        self._stop.set()
        self._thread.join(timeout=2)
        if self.calibrate and self._ratios:
            self.listener.echo_coupling = float(np.percentile(self._ratios, 95))

    def _run(self) -> None:
        settings = self.listener.settings
        scorer = SileroScorer.shared_copy(self.listener._scorer)
        held: collections.deque[np.ndarray] = collections.deque(
            maxlen=self.onset_frames + max(1, round(settings.preroll_ms / (FRAME_S * 1000))))
        run = 0
        while not self._stop.is_set():
            try:
                frame = self.listener._queue.get(timeout=0.05)
            except queue.Empty:
                continue
            held.append(frame)
            level = float(np.sqrt(np.mean(frame**2)))
            played = self.reference.level_since(time.monotonic() - self.echo_window_s) if self.reference else 0.0
            if self.calibrate:
                if played > 0.01:
                    self._ratios.append(level / played)
                continue
            voiced = scorer.score(frame) >= settings.vad_threshold
            louder = level > self.margin * self.listener.echo_coupling * played + 1e-3
            run = run + 1 if voiced and louder else 0
            if run >= self.onset_frames:
                self.listener.replay = list(held)
                self.interrupted.set()
                stop = getattr(self.reference, "stop", None)
                if stop is not None:
                    stop()  # at once, even while the rest of the reply is still being written
                return  # later frames stay queued for listen()


class SounddevicePlayer:
    """Plays clips through one long-lived output stream that never stops between clips.

    The stream's callback plays queued samples and silence when there are none, so a
    reply starts the moment its first sentence is queued (no stream to wake, nothing
    clipped at its start or end, no underruns), and :meth:`stop` silences it within one
    buffer when the person starts speaking over it. The stream is opened at the first
    clip's sample rate (or by :meth:`open`); later clips are resampled to it.

    Args:
        device: output device spec for :func:`resolve_device` ("" = system default).
    """

    blocksize = 512
    """Samples the callback fills at a time (23 ms at 22 kHz; smaller blocks underrun through PulseAudio's ALSA plugin)."""

    latency: float | str = "low"
    """PortAudio's suggested output latency (64 ms through PulseAudio here)."""

    def __init__(self, *, device: str = "") -> None:
        self.device = device
        self._stream: Any = None
        self._sample_rate = 0
        self._chunks: collections.deque[np.ndarray] = collections.deque()
        self._lock = threading.Lock()
        self._drained = threading.Event()
        self._drained.set()
        self._levels: collections.deque[tuple[float, float]] = collections.deque(maxlen=400)
        self.output_delay_s = 0.0
        """How long a sample written now takes to reach the speaker, as the stream last reported it."""
        self.underflows = 0

    def open(self, sample_rate: int) -> None:
        """Open and start the stream now (otherwise on the first clip), at ``sample_rate`` if the device allows."""
        if self._stream is not None:
            return
        sd = _sounddevice()
        index = resolve_device(self.device, "output")
        # Some hardware devices accept only their own rate; then clips are resampled to it.
        device_rate = int(sd.query_devices(index)["default_samplerate"])
        error: Exception | None = None
        for rate in dict.fromkeys([sample_rate, device_rate]):
            try:
                stream = sd.OutputStream(device=index, samplerate=rate, channels=1, dtype="float32",
                                         blocksize=self.blocksize, latency=self.latency, callback=self._callback)
                stream.start()
            except (sd.PortAudioError, ValueError) as exc:
                error = exc
                continue
            self._stream, self._sample_rate = stream, rate
            return
        raise AudioDeviceError(
            f"Cannot open the speaker (device {index}): {error}. {_LIST_HINT.format(kind='output')}"
        ) from error

    def _callback(self, outdata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        # Runs on PortAudio's thread: only copying here.
        self.output_delay_s = max(0.0, time_info.outputBufferDacTime - time_info.currentTime)
        if status.output_underflow:
            self.underflows += 1
        filled = 0
        with self._lock:
            while filled < frames and self._chunks:
                chunk = self._chunks[0]
                take = min(frames - filled, len(chunk))
                outdata[filled : filled + take, 0] = chunk[:take]
                filled += take
                if take == len(chunk):
                    self._chunks.popleft()
                else:
                    self._chunks[0] = chunk[take:]
            if not self._chunks:
                self._drained.set()
        outdata[filled:, 0] = 0.0
        if filled:
            self._levels.append((time.monotonic(), float(np.sqrt(np.mean(outdata[:filled, 0] ** 2)))))

    def level_since(self, since: float) -> float:
        """The loudest block (RMS) handed to the speaker since ``time.monotonic()`` ``since`` (0: silence)."""
        return max((level for at, level in list(self._levels) if at >= since), default=0.0)

    def enqueue(self, clip: AudioClip) -> None:
        """Queue a clip behind whatever is playing and return at once.

        Raises:
            AudioDeviceError: the speaker cannot be opened.
        """
        self.open(clip.sample_rate)
        samples = resample(clip.samples, clip.sample_rate, self._sample_rate)
        if len(samples) == 0:
            return
        with self._lock:
            self._chunks.append(np.ascontiguousarray(samples, dtype=np.float32))
            self._drained.clear()
        debug_line(f"[audio] output delay {self.output_delay_s * 1000:.0f} ms, underflows so far {self.underflows}")

    def wait(self, interrupt: threading.Event | None = None) -> bool:
        """Block until everything queued has been heard, or ``interrupt`` is set (then stop).

        Returns:
            True if all was heard, False if it was interrupted.

        Raises:
            AudioDeviceError: the speaker stopped working.
        """
        while not self._drained.wait(0.01):
            self._check_stream()
            if interrupt is not None and interrupt.is_set():
                self.stop()
                return False
        # The last samples are in the device's buffer: wait for them to leave the speaker.
        deadline = time.monotonic() + (self._stream.latency if self._stream is not None else 0.0) + 0.05
        while time.monotonic() < deadline:
            if interrupt is not None and interrupt.is_set():
                return False
            time.sleep(0.005)
        return True

    def _check_stream(self) -> None:
        if self._stream is not None and not self._stream.active:
            self._stream = None
            with self._lock:
                self._chunks.clear()
                self._drained.set()
            raise AudioDeviceError(f"The speaker stopped while playing. {_LIST_HINT.format(kind='output')}")

    def stop(self) -> None:
        """Drop everything queued: the speaker is silent within one buffer."""
        with self._lock:
            self._chunks.clear()
            self._drained.set()

    def play(self, clip: AudioClip) -> None:
        """Play the whole clip and return once its last sample has left the speaker.

        Raises:
            AudioDeviceError: the speaker cannot be opened or failed while playing.
        """
        self.enqueue(clip)
        self.wait()

    def close(self) -> None:
        """Close the output stream (after wait() returned, nothing audible is cut off)."""
        if self._stream is not None:
            self._stream.close(ignore_errors=True)
            self._stream = None

    def __enter__(self) -> SounddevicePlayer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class ClipListener:
    """A Listener over recorded audio: returns one Utterance per clip, then None.

    Use :meth:`segmenting` to cut a long recording into turns with the real VAD.

    Args:
        clips: the utterances, any sample rate (resampled to 16 kHz).
    """

    def __init__(self, clips: Iterable[AudioClip]) -> None:
        self._clips = iter(clips)

    @classmethod
    def segmenting(
        cls, recording: AudioClip, *, settings: EndpointSettings | None = None, scorer: SileroScorer | None = None
    ) -> ClipListener:
        """A listener that cuts ``recording`` into turns with SileroScorer and the Endpointer, lazily."""
        clip = AudioClip(resample(recording.samples, recording.sample_rate, SAMPLE_RATE))
        events = iter_segments(clip, scorer or SileroScorer(), settings)
        return cls(event.clip for event in events)

    def listen(self) -> Utterance | None:
        """The next utterance, or None when the clips are used up."""
        clip = next(self._clips, None)
        if clip is None:
            return None
        samples = resample(clip.samples, clip.sample_rate, SAMPLE_RATE)
        return Utterance(AudioClip(samples), now_iso(), now_iso(), speech_end_monotonic=time.monotonic())
