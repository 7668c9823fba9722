"""Speech-to-text on real speech with the real bundled tiny.en model (no stand-ins)."""

from __future__ import annotations

import os
import random
import re
import sys
from pathlib import Path

import jiwer
import numpy as np
import pytest

from voicereflect.config import SttSettings
from voicereflect.errors import AudioFileError, TranscriptionError
from voicereflect.stt import WhisperTranscriber, load_audio_file, resample, resolve_model
from voicereflect.types import SAMPLE_RATE, AudioClip

DATA = Path(__file__).parent / "data"
SPEECH = ["jfk.flac"] + [f"fleurs-en-{i:03d}.ogg" for i in range(10)]

pytestmark = pytest.mark.slow

# Every outgoing connection raises a "socket.connect" audit event; tests that must not
# touch the network read this list (audit hooks cannot be removed, so it stays cheap).
_connections: list[tuple] = []
sys.addaudithook(lambda event, args: _connections.append(args) if event == "socket.connect" else None)


def normalise(text: str) -> str:
    """Lower case, punctuation (but not apostrophes) to spaces, single spaces."""
    return " ".join(re.sub(r"[^\w\s']", " ", text.lower()).split())


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate after normalising both sides."""
    return jiwer.wer(normalise(reference), normalise(hypothesis))


@pytest.fixture(scope="module")
def transcriber() -> WhisperTranscriber:
    whisper = WhisperTranscriber(SttSettings())
    whisper.load()
    return whisper


@pytest.mark.parametrize("name", SPEECH)
def test_transcribe_file_is_accurate(transcriber, name):
    reference = (DATA / name).with_suffix(".txt").read_text(encoding="utf-8")
    transcript = transcriber.transcribe_file(DATA / name)
    assert wer(reference, transcript.text) < 0.25, transcript.text
    assert transcript.language == "en"
    assert transcript.duration_s > 1


def test_transcribe_clip_equals_transcribe_file(transcriber):
    clip = load_audio_file(DATA / "jfk.flac")
    assert transcriber.transcribe(clip) == transcriber.transcribe_file(DATA / "jfk.flac")


def test_clip_at_another_rate_is_resampled(transcriber):
    clip = resample(load_audio_file(DATA / "fleurs-en-003.ogg"), 22_050)
    assert clip.sample_rate == 22_050
    reference = (DATA / "fleurs-en-003.txt").read_text(encoding="utf-8")
    assert wer(reference, transcriber.transcribe(clip).text) < 0.25


def test_load_audio_file_gives_16k_mono_float32():
    clip = load_audio_file(DATA / "jfk.flac")
    assert clip.sample_rate == SAMPLE_RATE
    assert clip.samples.dtype == np.float32 and clip.samples.ndim == 1
    assert clip.duration_s == pytest.approx(11.0, abs=0.1)
    assert 0.1 < np.max(np.abs(clip.samples)) <= 1.0


def test_missing_file_names_the_file(tmp_path):
    path = tmp_path / "nowhere.wav"
    with pytest.raises(AudioFileError, match="nowhere.wav"):
        load_audio_file(path)


def test_empty_file_names_the_file(tmp_path):
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    with pytest.raises(AudioFileError, match="empty.wav.*empty"):
        load_audio_file(path)


def test_random_bytes_name_the_file(tmp_path):
    path = tmp_path / "noise.ogg"
    path.write_bytes(random.Random(7).randbytes(8192))
    with pytest.raises(AudioFileError, match="noise.ogg: not an audio file PyAV can read"):
        load_audio_file(path)


def test_folder_is_not_an_audio_file(tmp_path, transcriber):
    with pytest.raises(AudioFileError, match=re.escape(str(tmp_path))):
        transcriber.transcribe_file(tmp_path)


def test_error_message_is_one_line(tmp_path):
    path = tmp_path / "text.wav"
    path.write_text("hello, not audio\n" * 20)
    with pytest.raises(AudioFileError) as info:
        load_audio_file(path)
    assert "\n" not in str(info.value) and "text.wav" in str(info.value)


def test_silence_is_empty(transcriber):
    assert transcriber.transcribe(AudioClip(np.zeros(3 * SAMPLE_RATE, np.float32))).text == ""
    assert transcriber.transcribe(AudioClip(np.zeros(0, np.float32))).text == ""


def test_quiet_room_noise_is_near_empty(transcriber):
    noise = np.random.default_rng(0).standard_normal(3 * SAMPLE_RATE).astype(np.float32) * 0.003
    assert len(transcriber.transcribe(AudioClip(noise)).text.split()) <= 2


def test_default_model_is_the_bundled_folder():
    folder = Path(resolve_model("tiny.en", local_only=True))
    assert (folder / "model.bin").is_file()
    assert resolve_model("", local_only=True) == str(folder)


def test_model_folder_path_is_used_as_is():
    folder = resolve_model("tiny.en", local_only=True)
    assert resolve_model(folder, local_only=True) == folder
    assert resolve_model(os.path.relpath(folder), local_only=True) == folder


def test_folder_without_model_bin_is_refused(tmp_path):
    with pytest.raises(TranscriptionError, match="model.bin"):
        resolve_model(str(tmp_path), local_only=True)


def test_download_refused_when_local_only_without_network():
    before = len(_connections)
    with pytest.raises(TranscriptionError, match=r"base\.en.*download.*models/.*local_only = false"):
        resolve_model("base.en", local_only=True)
    with pytest.raises(TranscriptionError, match="download"):
        WhisperTranscriber(SttSettings(model="base.en")).load()
    assert len(_connections) == before


def test_download_passes_through_when_allowed():
    assert resolve_model("base.en", local_only=False) == "base.en"


def test_unknown_model_name_is_refused():
    with pytest.raises(TranscriptionError, match="not-a-model.*neither a faster-whisper size"):
        resolve_model("not-a-model", local_only=False)


def test_short_context_is_as_accurate_as_whole_windows(transcriber):
    """The short encoder window (our default for clips under 27 s) loses no words against
    faster-whisper's standard 30-second windows, over the English clips in tests/data."""
    names = SPEECH
    references, ours, standard = [], [], []
    model = transcriber._model
    for name in names:
        clip = load_audio_file(DATA / name)
        references.append(normalise((DATA / name).with_suffix(".txt").read_text(encoding="utf-8")))
        ours.append(normalise(transcriber.transcribe(clip).text))
        segments, _ = model.transcribe(clip.samples, language="en", beam_size=transcriber.settings.beam_size)
        standard.append(normalise(" ".join(s.text for s in segments)))
    assert jiwer.wer(references, ours) <= jiwer.wer(references, standard) + 0.005


def test_a_doubtful_short_decode_falls_back_to_the_standard_way(transcriber):
    noise = np.random.default_rng(7).normal(0, 0.3, 16_000 * 3).astype(np.float32)
    assert transcriber._short_context(noise, "") is None  # unsure: not used
    transcriber.transcribe(AudioClip(noise))  # and the standard path still answers


def test_a_prompt_continues_the_earlier_words(transcriber):
    clip = load_audio_file(DATA / "jfk.flac")
    second_half = AudioClip(clip.samples[int(5.5 * 16_000):])
    text = transcriber.transcribe(second_half, prompt="And so, my fellow Americans, ask not").text
    assert "country" in text.lower()


def test_a_short_clip_comes_with_the_decoders_runner_up_reading(transcriber):
    clip = load_audio_file(DATA / "jfk.flac")
    transcript = transcriber.transcribe(clip)
    assert transcript.runner_up and transcript.runner_up != transcript.text
    assert wer(transcript.text, transcript.runner_up) < 0.3  # a near miss, not another clip's words
