"""Virtual microphone and speaker for device tests: PulseAudio null sinks (see docs/virtual-audio.md).

``vr_mic`` is the person: what :func:`play_into_mic` plays into it, the program hears
through the default source ``vr_mic.monitor``. ``vr_speaker`` is the default sink: what
the program plays there, :class:`SpeakerRecorder` records from ``vr_speaker.monitor``.
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


class SpeakerRecorder:
    """Records what is played to the virtual speaker, as a 16 kHz clip.

    Use as a context manager; the recording starts before ``__enter__`` returns, and
    :attr:`clip` holds it after exit (or call :meth:`start` and :meth:`stop`).

    Args:
        tail_s: extra time recorded after stop() is called, for the monitor's own delay.
    """

    def __init__(self, *, tail_s: float = 0.3) -> None:
        self.tail_s = tail_s
        self.clip: AudioClip | None = None
        self._folder = tempfile.TemporaryDirectory()
        self._path = Path(self._folder.name) / "speaker.raw"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start recording; returns once audio is arriving."""
        self._file = open(self._path, "wb")  # noqa: SIM115  (closed in stop)
        self._process = subprocess.Popen(
            [
                "parec", "-d", f"{SPEAKER_SINK}.monitor", "--format=s16le", f"--rate={RECORD_RATE}",
                "--channels=1", "--raw", "--latency-msec=20",
            ],
            stdout=self._file,
        )
        # A null sink's monitor sends silence continuously, so data arrives once recording runs.
        deadline = time.monotonic() + 5
        while self._path.stat().st_size == 0:
            if time.monotonic() > deadline or self._process.poll() is not None:
                self.stop()
                raise RuntimeError(f"parec did not start recording {SPEAKER_SINK}.monitor")
            time.sleep(0.01)

    def stop(self) -> AudioClip:
        """Stop recording and return everything recorded (again on later calls)."""
        if self.clip is not None:
            return self.clip
        if self._process is not None:
            time.sleep(self.tail_s)
            self._process.terminate()
            self._process.wait(timeout=5)
            self._process = None
            self._file.close()
        data = np.frombuffer(self._path.read_bytes(), dtype="<i2").astype(np.float32) / 32768.0
        self._folder.cleanup()
        self.clip = AudioClip(data, RECORD_RATE)
        return self.clip

    def __enter__(self) -> SpeakerRecorder:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
