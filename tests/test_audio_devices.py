"""sounddevice over the virtual PulseAudio devices: devices, microphone, echo guard, speaker."""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile

from tests.virtual_audio import SpeakerRecorder, play_into_mic
from voicereflect.audio import MicrophoneListener, SounddevicePlayer, list_devices, resolve_device
from voicereflect.config import EndpointSettings
from voicereflect.errors import AudioDeviceError
from voicereflect.types import SAMPLE_RATE, AudioClip
from voicereflect.vad import SileroScorer, segment_clip

pytestmark = [pytest.mark.device, pytest.mark.usefixtures("virtual_audio")]

DATA = Path(__file__).parent / "data"
SETTINGS = EndpointSettings(silence_ms=700)


@pytest.fixture(scope="module")
def scorer() -> SileroScorer:
    """One real Silero VAD for the module (listeners reset it per listen)."""
    return SileroScorer()


@pytest.fixture(scope="module")
def harvard() -> np.ndarray:
    """Ten Harvard sentences at 16 kHz (see data/CREDITS.md)."""
    samples, _ = soundfile.read(DATA / "harvard-16k.wav", dtype="float32")
    return samples


@pytest.fixture(scope="module")
def sentence_one(harvard) -> AudioClip:
    """'A gold ring will please most any girl.': 2.6 s of speech in 4.5 s."""
    return AudioClip(harvard[: int(4.5 * SAMPLE_RATE)])


@pytest.fixture(scope="module")
def sentence_five(harvard) -> AudioClip:
    """'Small children came to see him.': 1.6 s of speech in 2.7 s."""
    return AudioClip(harvard[int(14.9 * SAMPLE_RATE) : int(17.6 * SAMPLE_RATE)])


def expected_duration_s(clip: AudioClip, scorer: SileroScorer) -> float:
    """How long the utterance is when the same audio is segmented straight from the file."""
    [event] = segment_clip(clip, scorer, SETTINGS)
    return event.clip.duration_s


def play_later(clip: AudioClip, delay_s: float = 0.3) -> threading.Thread:
    """Play a clip into the microphone from a thread, once listen() has begun."""
    thread = threading.Thread(target=lambda: (time.sleep(delay_s), play_into_mic(clip)), daemon=True)
    thread.start()
    return thread


def tone_runs_ms(samples: np.ndarray, rate: int) -> list[tuple[int, int]]:
    """(start, length) in ms of each stretch whose 10 ms RMS shows the test tone."""
    window = rate // 100
    count = len(samples) // window
    rms = np.sqrt((samples[: count * window].reshape(count, window) ** 2).mean(axis=1))
    edges = np.diff(np.r_[0, (rms > 0.1).astype(int), 0])
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return [(int(s) * 10, int(e - s) * 10) for s, e in zip(starts, ends)]


def test_devices_are_listed_and_resolved():
    devices = list_devices()
    assert any(d["default_input"] for d in devices) and any(d["default_output"] for d in devices)
    default_input = resolve_device("", "input")
    assert devices[default_input]["inputs"] > 0
    assert resolve_device(str(default_input), "input") == default_input
    pulse = resolve_device("PULSE", "output")
    assert devices[pulse]["name"] == "pulse"


@pytest.mark.parametrize("spec", ["no such microphone", "999"])
def test_unknown_device_says_how_to_list_devices(spec):
    with pytest.raises(AudioDeviceError, match="voicereflect talk --list-devices"):
        resolve_device(spec, "input")


def test_microphone_hears_one_utterance_of_the_right_length(scorer, sentence_one):
    started = []
    with MicrophoneListener(settings=SETTINGS, scorer=scorer, on_speech_start=lambda: started.append(1)) as mic:
        player = play_later(sentence_one)
        utterance = mic.listen()
        speech_over = time.monotonic()
        player.join()
    assert utterance.clip.sample_rate == SAMPLE_RATE
    assert utterance.clip.duration_s == pytest.approx(expected_duration_s(sentence_one, scorer), abs=0.25)
    assert utterance.started_at < utterance.ended_at
    # The turn ends silence_ms after the last voiced frame.
    assert speech_over - utterance.speech_end_monotonic == pytest.approx(0.7, abs=0.15)
    assert started == [1]
    assert mic.overflows == 0


def test_echo_guard_discards_what_was_heard_before_listening(scorer, sentence_one, sentence_five):
    with MicrophoneListener(settings=SETTINGS, scorer=scorer) as mic:
        play_into_mic(sentence_one)  # the program "speaking" while nobody listens
        player = play_later(sentence_five)
        utterance = mic.listen()
        player.join()
    assert utterance.clip.duration_s == pytest.approx(expected_duration_s(sentence_five, scorer), abs=0.25)


def test_listener_keeps_its_stream_across_listens(scorer, sentence_five):
    with MicrophoneListener(settings=SETTINGS, scorer=scorer) as mic:
        durations = []
        for _ in range(2):
            player = play_later(sentence_five)
            durations.append(mic.listen().clip.duration_s)
            player.join()
    assert durations == pytest.approx([expected_duration_s(sentence_five, scorer)] * 2, abs=0.25)


def test_a_stalled_microphone_raises(monkeypatch, scorer):
    # A private null sink, so suspending it stalls only this test's microphone.
    module = subprocess.run(
        ["pactl", "load-module", "module-null-sink", "sink_name=vr_stall_test"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()
    monkeypatch.setenv("PULSE_SOURCE", "vr_stall_test.monitor")
    try:
        with MicrophoneListener(settings=SETTINGS, scorer=scorer) as mic:
            deadline = time.monotonic() + mic.startup_timeout_s
            while mic.frames_received == 0 and time.monotonic() < deadline:
                time.sleep(0.05)
            subprocess.run(["pactl", "suspend-sink", "vr_stall_test", "1"], check=True)
            began = time.monotonic()
            with pytest.raises(AudioDeviceError, match="stopped sending audio"):
                mic.listen()
            assert time.monotonic() - began == pytest.approx(mic.stall_timeout_s, abs=0.5)
    finally:
        subprocess.run(["pactl", "unload-module", module], capture_output=True)


def test_player_plays_every_clip_whole_on_one_stream():
    t = np.arange(SAMPLE_RATE) / SAMPLE_RATE
    tone = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    with SpeakerRecorder() as recorder:
        player = SounddevicePlayer()
        player.play(AudioClip(tone))  # opens the stream at 16 kHz: 1.0 s
        time.sleep(0.5)  # idle between replies
        player.play(AudioClip(tone[:11025], 22050))  # resampled: 0.5 s
        player.close()  # right after play() returned: nothing audible may be cut
    runs = tone_runs_ms(recorder.clip.samples, recorder.clip.sample_rate)
    assert [length for _, length in runs] == [pytest.approx(1000, abs=20), pytest.approx(500, abs=20)]
