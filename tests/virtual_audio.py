"""Virtual microphone and speaker for device tests: PulseAudio null sinks (see docs/virtual-audio.md).

``vr_mic`` is the person: what :func:`play_into_mic` plays into it, the program hears
through the default source ``vr_mic.monitor``. ``vr_speaker`` is the default sink: what
the program plays there, :class:`SpeakerRecorder` records from ``vr_speaker.monitor``.
:class:`ConversationRecorder` records both on one timeline, for gaps measured from the
audio itself (by the device tests and ``benchmarks/latency.py``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Self

import numpy as np
import pytest
import soundfile

from voicereflect.types import AudioClip

MIC_SINK = "vr_mic"
SPEAKER_SINK = "vr_speaker"
RECORD_RATE = 16_000


def _pactl(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["pactl", *args], capture_output=True, text=True, timeout=10, check=check)


def _server_up() -> bool:
    try:
        return _pactl("info", check=False).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _sinks() -> set[str]:
    lines = _pactl("list", "short", "sinks").stdout.splitlines()
    return {line.split("\t")[1] for line in lines if "\t" in line}


def _start_daemon() -> None:
    subprocess.run(
        [
            "pulseaudio", "-D", "--exit-idle-time=-1", "-n",
            "--load=module-native-protocol-unix",
            f"--load=module-null-sink sink_name={MIC_SINK}",
            f"--load=module-null-sink sink_name={SPEAKER_SINK}",
            "--load=module-always-sink",
        ],
        check=True, capture_output=True, timeout=20,
    )
    deadline = time.monotonic() + 10
    while not _server_up():
        if time.monotonic() > deadline:
            raise RuntimeError("pulseaudio -D started but 'pactl info' still fails after 10 s")
        time.sleep(0.1)


@contextlib.contextmanager
def virtual_devices() -> Iterator[None]:
    """PulseAudio with the vr_mic/vr_speaker null sinks as default source and sink.

    Starts the daemon only if none answers, loads only missing sinks, and on exit
    undoes exactly that. Used by the ``virtual_audio`` fixture and by the benchmarks.
    """
    started_daemon = False
    loaded_modules: list[str] = []
    previous: dict[str, str] = {}
    if not _server_up():
        _start_daemon()
        started_daemon = True
    else:
        previous = {
            "sink": _pactl("get-default-sink", check=False).stdout.strip(),
            "source": _pactl("get-default-source", check=False).stdout.strip(),
        }
        for name in (MIC_SINK, SPEAKER_SINK):
            if name not in _sinks():
                loaded_modules.append(_pactl("load-module", "module-null-sink", f"sink_name={name}").stdout.strip())
    _pactl("set-default-sink", SPEAKER_SINK)
    _pactl("set-default-source", f"{MIC_SINK}.monitor")
    # Name the server explicitly: CLI tests give the program its own XDG_CONFIG_HOME, and
    # PulseAudio clients otherwise find the server's socket through that folder.
    env = pytest.MonkeyPatch()
    server = next(l.split(": ", 1)[1] for l in _pactl("info").stdout.splitlines() if l.startswith("Server String"))
    env.setenv("PULSE_SERVER", server if server.startswith(("unix:", "tcp:")) else f"unix:{server}")
    try:
        yield
    finally:
        env.undo()
        if started_daemon:
            subprocess.run(["pulseaudio", "-k"], capture_output=True, timeout=10)
        else:
            for key in ("sink", "source"):
                if previous.get(key):
                    _pactl(f"set-default-{key}", previous[key], check=False)
            for module in reversed(loaded_modules):
                _pactl("unload-module", module, check=False)


def missing_tools() -> list[str]:
    """PulseAudio tools the virtual devices need that are not installed."""
    return [tool for tool in ("pulseaudio", "pactl", "paplay", "parec") if shutil.which(tool) is None]


@pytest.fixture(scope="session")
def virtual_audio() -> Iterator[None]:
    """The virtual devices for a whole test session (see :func:`virtual_devices`).

    Skips when PulseAudio is not installed (``make test`` installs it).
    """
    missing = missing_tools()
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed; run 'make test' (it installs pulseaudio pulseaudio-utils)")
    with virtual_devices():
        yield


def play_into_mic(audio: str | os.PathLike[str] | AudioClip) -> None:
    """Play a sound file or clip into the virtual microphone, blocking until it has played."""
    if isinstance(audio, AudioClip):
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "clip.wav"
            soundfile.write(path, audio.samples, audio.sample_rate, subtype="PCM_16")
            play_into_mic(path)
        return
    subprocess.run(["paplay", "-d", MIC_SINK, str(audio)], check=True, capture_output=True, timeout=120)


class _MonitorRecording:
    """parec recording one PulseAudio monitor source to a temporary file, as float samples.

    Use as a context manager; the recording starts before ``__enter__`` returns. Subclasses
    say what ``stop`` returns.

    Args:
        source: the monitor source to record.
        channels: 1, or 2 for a stereo sink (samples come back interleaved).
        tail_s: extra time recorded after stop() is called, for the monitor's own delay.
        start_timeout_s: how long to wait for parec's first audio.
    """

    def __init__(self, source: str, *, channels: int, tail_s: float, start_timeout_s: float) -> None:
        self.source, self.channels, self.tail_s, self.start_timeout_s = source, channels, tail_s, start_timeout_s
        self._folder = tempfile.TemporaryDirectory()
        self._path = Path(self._folder.name) / "recording.raw"
        self._process: subprocess.Popen[bytes] | None = None
        self._samples: np.ndarray | None = None

    def start(self) -> None:
        """Start recording; returns once audio is arriving."""
        self._file = open(self._path, "wb")  # noqa: SIM115  (closed in _stop_recording)
        self._process = subprocess.Popen(
            ["parec", "-d", self.source, "--format=s16le", f"--rate={RECORD_RATE}", f"--channels={self.channels}",
             "--raw", "--latency-msec=20"],
            stdout=self._file,
        )
        # A null sink's monitor sends silence continuously, so data arrives once recording runs.
        deadline = time.monotonic() + self.start_timeout_s
        while self._path.stat().st_size == 0:
            if time.monotonic() > deadline or self._process.poll() is not None:
                self.stop()
                raise RuntimeError(f"parec did not start recording {self.source}")
            time.sleep(0.01)

    def stop(self) -> object:  # pragma: no cover - defined by subclasses
        """Stop recording and return what was recorded."""
        raise NotImplementedError

    def _stop_recording(self) -> np.ndarray:
        """Stop parec (after ``tail_s``) and return every sample recorded (again on later calls)."""
        if self._samples is not None:
            return self._samples
        if self._process is not None:
            time.sleep(self.tail_s)
            self._process.terminate()
            self._process.wait(timeout=5)
            self._process = None
            self._file.close()
        data = np.frombuffer(self._path.read_bytes(), dtype="<i2").astype(np.float32) / 32768.0 \
            if self._path.exists() else np.zeros(0, np.float32)
        self._folder.cleanup()
        self._samples = data
        return data

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class SpeakerRecorder(_MonitorRecording):
    """Records what is played to the virtual speaker, as a 16 kHz clip.

    Use as a context manager; the recording starts before ``__enter__`` returns, and
    :attr:`clip` holds it after exit (or call :meth:`start` and :meth:`stop`).

    Args:
        tail_s: extra time recorded after stop() is called, for the monitor's own delay.
    """

    def __init__(self, *, tail_s: float = 0.3) -> None:
        super().__init__(f"{SPEAKER_SINK}.monitor", channels=1, tail_s=tail_s, start_timeout_s=5)
        self.clip: AudioClip | None = None

    def stop(self) -> AudioClip:
        """Stop recording and return everything recorded (again on later calls)."""
        self.clip = AudioClip(self._stop_recording(), RECORD_RATE)
        return self.clip


class ConversationRecorder(_MonitorRecording):
    """Records both sides of a conversation on one timeline: the person (left), the program (right).

    A stereo null sink ``vr_mix`` takes the virtual microphone on its left channel and the
    virtual speaker on its right, through two loopbacks with the same latency, so a gap
    between the person's last word and the reply's first sound is measured from the audio
    itself (no clock of the test's own, no paplay start-up in it). Use as a context manager;
    :attr:`mix` holds the (samples, 2) recording at 16 kHz after exit.
    """

    frame = RECORD_RATE // 50
    """Samples per 20 ms analysis frame."""

    def __init__(self) -> None:
        # An idle null-sink monitor can take ~2 s to deliver its first audio; 0.5 s more at the end for the loopbacks.
        super().__init__("vr_mix.monitor", channels=2, tail_s=0.5, start_timeout_s=10)
        self.mix: np.ndarray | None = None
        self._modules: list[str] = []

    def start(self) -> None:
        """Load the mixing sink and its loopbacks, then start recording; returns once audio is arriving."""
        modules = [
            ("module-null-sink", "sink_name=vr_mix", "channels=2", f"rate={RECORD_RATE}"),
            ("module-loopback", f"source={MIC_SINK}.monitor", "sink=vr_mix", "channels=1",
             "channel_map=front-left", "latency_msec=20"),
            ("module-loopback", f"source={SPEAKER_SINK}.monitor", "sink=vr_mix", "channels=1",
             "channel_map=front-right", "latency_msec=20"),
        ]
        try:
            for module in modules:
                self._modules.append(_pactl("load-module", *module).stdout.strip())
        except (OSError, subprocess.SubprocessError):
            self.stop()  # unloads the modules loaded so far
            raise
        super().start()

    def stop(self) -> np.ndarray:
        """Stop recording, unload the modules and return the mix (again on later calls)."""
        data = self._stop_recording()
        for module in reversed(self._modules):
            _pactl("unload-module", module, check=False)
        self._modules = []
        self.mix = data[: len(data) // 2 * 2].reshape(-1, 2)
        return self.mix


def voiced_frames(samples: np.ndarray, threshold: float = 0.01) -> np.ndarray:
    """Per 20 ms frame of a 16 kHz channel: is there sound (RMS above ``threshold``)?"""
    frame = ConversationRecorder.frame
    frames = samples[: len(samples) // frame * frame].reshape(-1, frame)
    return np.sqrt((frames**2).mean(axis=1)) > threshold


def voiced_runs(mask: np.ndarray, merge_gap_s: float) -> list[tuple[int, int]]:
    """Runs of sound (start, end) in 20 ms frames, joining those apart by at most ``merge_gap_s``."""
    gap = round(merge_gap_s * 50)
    runs: list[tuple[int, int]] = []
    for index in np.flatnonzero(mask):
        if runs and index - runs[-1][1] <= gap:
            runs[-1] = (runs[-1][0], index + 1)
        else:
            runs.append((index, index + 1))
    return runs


def person_turns(mix: np.ndarray, merge_gap_s: float = 0.8) -> list[tuple[int, int]]:
    """What the person said (the left channel), as runs of 20 ms frames."""
    return voiced_runs(voiced_frames(mix[:, 0]), merge_gap_s)


def reply_gaps(mix: np.ndarray) -> list[float]:
    """For each thing the person said, seconds from its last sound to the next sound of the program."""
    reply = voiced_frames(mix[:, 1])
    gaps = []
    for _, end in person_turns(mix):
        onsets = np.flatnonzero(reply[end:])
        if len(onsets):
            gaps.append(onsets[0] / 50)
    return gaps


def barge_in_delays(mix: np.ndarray) -> list[float]:
    """For each time the person started speaking while the program spoke: seconds until it went quiet.

    The program speaking means a sound of it in the 0.5 s before the person began (its
    sentences have shorter pauses) and after. The program's last sound before the person
    stopped counts, so a pause between two of its sentences is never taken for a stop; a
    reply that went on through everything the person said scores that whole length.
    """
    reply = voiced_frames(mix[:, 1])
    delays = []
    for start, end in person_turns(mix):
        voiced = np.flatnonzero(reply[start:end])
        if not reply[max(0, start - 25): start].any() or not len(voiced):
            continue  # the person spoke into silence, or after the program had finished: not a barge-in
        delays.append((voiced[-1] + 1) / 50)
    return delays
