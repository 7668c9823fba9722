"""Text-to-speech with the real Piper voice and espeak-ng, checked by transcribing it back."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import jiwer
import pytest

from voicereflect.config import SttSettings, TtsSettings
from voicereflect.errors import ConfigError, SpeechError
from voicereflect.stt import WhisperTranscriber
from voicereflect.tts import (
    PiperSynthesizer,
    Pyttsx3Synthesizer,
    SilentSpeaker,
    VoiceSpeaker,
    build_synthesizer,
)
from voicereflect.types import AudioClip

pytestmark = pytest.mark.slow

SENTENCE = "What felt hardest about today, and what helped you get through it?"


def normalise(text: str) -> str:
    """Lower case, punctuation (but not apostrophes) to spaces, single spaces."""
    return " ".join(re.sub(r"[^\w\s']", " ", text.lower()).split())


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate after normalising both sides."""
    return jiwer.wer(normalise(reference), normalise(hypothesis))


class RecordingPlayer:
    """Player that keeps every clip instead of playing it."""

    def __init__(self) -> None:
        self.played: list[AudioClip] = []

    def play(self, clip: AudioClip) -> None:
        self.played.append(clip)


@pytest.fixture(scope="module")
def transcriber() -> WhisperTranscriber:
    return WhisperTranscriber(SttSettings())


@pytest.fixture(scope="module")
def piper() -> PiperSynthesizer:
    return PiperSynthesizer()


@pytest.fixture(scope="module")
def espeak() -> Pyttsx3Synthesizer:
    return Pyttsx3Synthesizer()


def test_piper_round_trip(piper, transcriber):
    clip = piper.synthesize(SENTENCE)
    assert clip.sample_rate == piper.sample_rate == 22_050
    assert 2 < clip.duration_s < 10
    assert wer(SENTENCE, transcriber.transcribe(clip).text) < 0.2


def test_piper_rate_changes_length(piper):
    fast = PiperSynthesizer(rate=1.5)
    assert fast.synthesize(SENTENCE).duration_s < 0.8 * piper.synthesize(SENTENCE).duration_s


def test_piper_blank_text_is_empty(piper):
    assert piper.synthesize("   ").duration_s == 0


def test_piper_missing_voice_is_named(tmp_path):
    with pytest.raises(SpeechError, match="nope.onnx"):
        PiperSynthesizer(str(tmp_path / "nope.onnx"))


def test_pyttsx3_round_trip(espeak, transcriber):
    clip = espeak.synthesize(SENTENCE)
    assert clip.duration_s > 2
    assert wer(SENTENCE, transcriber.transcribe(clip).text) < 0.5


def test_pyttsx3_ten_in_a_row(espeak, capsys):
    # Alternate short and long texts: a stale or truncated file would break the ordering.
    short, long = "Hello there.", "Take a slow breath, and tell me what is on your mind right now."
    from voicereflect.tts import memory_folder

    folder = Path(memory_folder() or tempfile.gettempdir())
    before = set(folder.glob("voicereflect-tts-*"))
    durations = [espeak.synthesize(short if i % 2 == 0 else long).duration_s for i in range(10)]
    assert all(d > 0.3 for d in durations)
    assert all(durations[i] < durations[i + 1] for i in range(0, 10, 2))
    assert set(folder.glob("voicereflect-tts-*")) == before
    assert capsys.readouterr().out == ""  # pyttsx3's "Audio saved to ..." stays off stdout


def test_pyttsx3_unknown_voice_is_named():
    with pytest.raises(SpeechError, match="no-such-voice.*espeak-ng --voices"):
        Pyttsx3Synthesizer(voice="no-such-voice").synthesize("Hello.")


def test_voice_speaker_plays_what_it_synthesized(piper):
    player = RecordingPlayer()
    VoiceSpeaker(piper, player).say("Thank you for sharing that.")
    assert len(player.played) == 1 and player.played[0].duration_s > 0.5


def test_voice_speaker_skips_blank_text(piper):
    player = RecordingPlayer()
    VoiceSpeaker(piper, player).say("  ")
    assert player.played == []


def test_silent_speaker_says_nothing():
    assert SilentSpeaker().say("anything") is None


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        (TtsSettings(), PiperSynthesizer),
        (TtsSettings(engine="Piper"), PiperSynthesizer),
        (TtsSettings(engine="pyttsx3"), Pyttsx3Synthesizer),
        (TtsSettings(engine="auto", voice="en-us"), Pyttsx3Synthesizer),
    ],
)
def test_build_synthesizer_picks_the_engine(settings, expected):
    assert isinstance(build_synthesizer(settings), expected)


def test_build_synthesizer_refuses_unknown_engine():
    with pytest.raises(ConfigError, match="festival"):
        build_synthesizer(TtsSettings(engine="festival"))
