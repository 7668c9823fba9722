"""Endpointer on made-up probabilities; Silero VAD and ClipListener on real recorded speech."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile

from voicereflect.audio import ClipListener, resample
from voicereflect.config import EndpointSettings
from voicereflect.types import SAMPLE_RATE, AudioClip
from voicereflect.vad import FRAME_SAMPLES, Endpointer, SileroScorer, iter_frames, segment_clip

DATA = Path(__file__).parent / "data"

# 32 ms frames: 320 ms = 10 frames, 96 ms = 3 frames.
SETTINGS = EndpointSettings(vad_threshold=0.5, silence_ms=320, min_speech_ms=96, preroll_ms=96, max_turn_s=60.0)


def run(endpointer: Endpointer, probabilities: list[float], start: int = 0) -> list:
    """Push one frame per probability, each frame filled with its index; return the events."""
    events = []
    for offset, probability in enumerate(probabilities):
        frame = np.full(FRAME_SAMPLES, start + offset, dtype=np.float32)
        event = endpointer.push(probability, frame)
        if event is not None:
            events.append(event)
    return events


def frame_ids(event) -> list[int]:
    """The indexes of the frames an event's clip is made of."""
    return [int(v) for v in event.clip.samples.reshape(-1, FRAME_SAMPLES)[:, 0]]


def test_turn_ends_after_silence_ms_with_preroll_and_trailing_silence():
    endpointer = Endpointer(SETTINGS)
    [event] = run(endpointer, [0.0] * 5 + [0.9] * 10 + [0.0] * 20)
    assert event.reason == "silence"
    assert (event.first_voiced_frame, event.last_voiced_frame, event.end_frame) == (5, 14, 24)
    assert frame_ids(event) == list(range(2, 25))  # 3 frames of pre-roll, speech, 10 of silence
    assert event.speech_start_s == pytest.approx(0.16)
    assert event.speech_end_s == pytest.approx(0.48)
    assert event.trailing_s == pytest.approx(0.32)


def test_event_arrives_exactly_when_silence_ms_is_reached():
    endpointer = Endpointer(SETTINGS)
    assert run(endpointer, [0.9] * 10 + [0.0] * 9) == []
    assert len(run(endpointer, [0.0], start=19)) == 1


def test_blip_shorter_than_min_speech_is_ignored():
    endpointer = Endpointer(SETTINGS)
    assert run(endpointer, [0.0] * 5 + [0.9] * 2 + [0.0] * 30) == []
    assert not endpointer.in_turn and not endpointer.speech_started


def test_speech_after_a_dropped_blip_keeps_its_onset():
    endpointer = Endpointer(SETTINGS)
    run(endpointer, [0.9] * 2 + [0.0] * 10)
    [event] = run(endpointer, [0.9] * 5 + [0.0] * 10, start=12)
    assert frame_ids(event)[:3] == [9, 10, 11]


def test_pause_shorter_than_silence_ms_does_not_split_the_turn():
    endpointer = Endpointer(SETTINGS)
    events = run(endpointer, [0.9] * 10 + [0.0] * 9 + [0.9] * 10 + [0.0] * 10)
    assert len(events) == 1
    assert (events[0].first_voiced_frame, events[0].last_voiced_frame) == (0, 28)


def test_max_turn_s_caps_a_long_turn():
    settings = EndpointSettings(vad_threshold=0.5, silence_ms=320, min_speech_ms=96, preroll_ms=0, max_turn_s=0.32)
    endpointer = Endpointer(settings)
    events = run(endpointer, [0.9] * 25)
    assert [e.reason for e in events] == ["max_turn", "max_turn"]
    assert [frame_ids(e) for e in events] == [list(range(0, 10)), list(range(10, 20))]


def test_hysteresis_keeps_speech_going_between_the_thresholds():
    endpointer = Endpointer(SETTINGS)
    [event] = run(endpointer, [0.9] * 5 + [0.4] * 20 + [0.0] * 10)
    assert event.last_voiced_frame == 24
    # 0.4 is below the threshold, so it cannot open a turn on its own.
    assert run(Endpointer(SETTINGS), [0.4] * 30) == []


def test_probability_between_thresholds_does_not_cancel_a_silence_run():
    endpointer = Endpointer(SETTINGS)
    [event] = run(endpointer, [0.9] * 5 + [0.0] * 5 + [0.4] * 5 + [0.0] * 10)
    assert event.last_voiced_frame == 4
    assert event.end_frame == 14


def test_speech_started_is_visible_once_min_speech_is_reached():
    endpointer = Endpointer(SETTINGS)
    seen = []
    for probability in [0.0, 0.9, 0.9, 0.9, 0.9]:
        endpointer.push(probability, np.zeros(FRAME_SAMPLES, dtype=np.float32))
        seen.append((endpointer.in_turn, endpointer.speech_started))
    assert seen == [(False, False), (True, False), (True, False), (True, True), (True, True)]


def test_flush_returns_the_open_turn_at_end_of_input():
    endpointer = Endpointer(SETTINGS)
    run(endpointer, [0.9] * 6)
    event = endpointer.flush()
    assert event is not None and event.reason == "end_of_input"
    assert endpointer.flush() is None


# Real Silero VAD on real speech.


@pytest.fixture(scope="module")
def scorer() -> SileroScorer:
    """One real Silero VAD for the module (it is reset per use)."""
    return SileroScorer()


@pytest.fixture(scope="module")
def harvard() -> AudioClip:
    """Ten Harvard sentences with 1-2 s pauses (see data/CREDITS.md)."""
    samples, rate = soundfile.read(DATA / "harvard-16k.wav", dtype="float32")
    assert rate == SAMPLE_RATE
    return AudioClip(samples)


def test_scorer_scores_one_frame_and_rejects_other_sizes(scorer):
    probability = scorer.score(np.zeros(FRAME_SAMPLES, dtype=np.float32))
    assert isinstance(probability, float) and 0.0 <= probability <= 1.0
    with pytest.raises(ValueError, match="512"):
        scorer.score(np.zeros(480, dtype=np.float32))


def test_scorer_hears_speech_and_reset_makes_it_repeatable(scorer, harvard):
    frames = list(iter_frames(harvard.samples[: 5 * SAMPLE_RATE]))
    scorer.reset()
    first = [scorer.score(f) for f in frames]
    scorer.reset()
    second = [scorer.score(f) for f in frames]
    assert first == pytest.approx(second)
    assert max(first[:30]) < 0.2  # the first second is room noise
    assert max(first) > 0.9


def test_harvard_sentences_are_segmented_into_about_ten_turns(scorer, harvard):
    events = segment_clip(harvard, scorer, EndpointSettings(silence_ms=700))
    assert 8 <= len(events) <= 11
    for event in events:
        assert 1.0 < event.clip.duration_s < 6.0
        assert event.clip.sample_rate == SAMPLE_RATE
    starts = [e.speech_start_s for e in events]
    assert starts == sorted(starts)
    assert starts[0] == pytest.approx(1.25, abs=0.3)


def test_a_longer_silence_window_merges_sentences(scorer, harvard):
    short = segment_clip(harvard, scorer, EndpointSettings(silence_ms=500))
    long = segment_clip(harvard, scorer, EndpointSettings(silence_ms=1500))
    assert len(long) < len(short)


def test_silence_and_white_noise_yield_no_turns(scorer):
    rng = np.random.default_rng(7)
    silence = AudioClip(np.zeros(3 * SAMPLE_RATE, dtype=np.float32))
    noise = AudioClip((rng.standard_normal(5 * SAMPLE_RATE) * 0.1).astype(np.float32))
    assert segment_clip(silence, scorer) == []
    assert segment_clip(noise, scorer) == []


def test_clip_listener_returns_each_clip_then_none():
    clips = [AudioClip(np.zeros(8000, dtype=np.float32), 8000), AudioClip(np.ones(1600, dtype=np.float32))]
    listener = ClipListener(clips)
    first, second = listener.listen(), listener.listen()
    assert listener.listen() is None
    assert first.clip.sample_rate == SAMPLE_RATE and len(first.clip.samples) == 16000
    assert len(second.clip.samples) == 1600
    assert first.started_at <= first.ended_at


def test_segmenting_clip_listener_cuts_a_recording_into_turns(scorer, harvard):
    eight_khz = AudioClip(resample(harvard.samples, SAMPLE_RATE, 8000), 8000)
    listener = ClipListener.segmenting(eight_khz, settings=EndpointSettings(silence_ms=700), scorer=scorer)
    utterances = []
    while (utterance := listener.listen()) is not None:
        utterances.append(utterance)
    assert 8 <= len(utterances) <= 11
    assert all(u.clip.sample_rate == SAMPLE_RATE for u in utterances)


class ScriptedJudge:
    """A TurnJudge stand-in: answers from a list, and records what it was asked."""

    def __init__(self, answers: list[bool]) -> None:
        self.answers = list(answers)
        self.asked: list[int] = []
        self.pauses: list[int] = []
        self.resumptions = 0
        self.pause_lengths: list[int] = []

    def paused(self, turn: np.ndarray) -> None:
        self.pauses.append(len(turn) // FRAME_SAMPLES)

    def finished(self, turn: np.ndarray) -> bool:
        self.asked.append(len(turn) // FRAME_SAMPLES)
        return self.answers.pop(0)

    def resumed(self, pause_frames: int = 0) -> None:
        self.resumptions += 1
        self.pause_lengths.append(pause_frames)


JUDGED = EndpointSettings(vad_threshold=0.5, silence_ms=320, max_silence_ms=960, min_speech_ms=96, preroll_ms=0,
                          max_turn_s=60.0)


def test_a_finished_turn_ends_at_the_first_pause_the_judge_hears_as_finished():
    judge = ScriptedJudge([True])
    [event] = run(Endpointer(JUDGED, judge=judge), [0.9] * 10 + [0.0] * 40)
    assert event.reason == "finished" and event.end_frame == 19
    assert judge.pauses == [12]  # told 2 frames (64 ms) into the pause, to start transcribing
    assert judge.asked == [20]  # asked once, with the turn so far (speech and the pause)


def test_an_unfinished_pause_waits_for_more_speech_and_is_asked_again_at_the_next_pause():
    judge = ScriptedJudge([False, True])
    events = run(Endpointer(JUDGED, judge=judge), [0.9] * 10 + [0.0] * 20 + [0.9] * 10 + [0.0] * 20)
    [event] = events
    assert event.reason == "finished" and event.first_voiced_frame == 0 and event.last_voiced_frame == 39
    assert judge.resumptions == 1 and len(judge.asked) == 2


def test_an_unfinished_pause_ends_the_turn_at_max_silence_ms():
    judge = ScriptedJudge([False])
    [event] = run(Endpointer(JUDGED, judge=judge), [0.9] * 10 + [0.0] * 40)
    assert event.reason == "max_silence" and event.trailing_s == pytest.approx(0.96)
    assert judge.asked == [20] and judge.resumptions == 0


def test_a_pause_too_short_to_judge_is_announced_and_then_resumed():
    judge = ScriptedJudge([True])
    [event] = run(Endpointer(JUDGED, judge=judge), [0.9] * 10 + [0.0] * 5 + [0.9] * 10 + [0.0] * 20)
    assert judge.pauses == [12, 27] and judge.resumptions == 1 and judge.asked == [35]
    assert judge.pause_lengths == [5]  # told how long the pause was: a piece may end there
    assert event.last_voiced_frame == 24


def test_an_unfinished_pause_is_judged_once_more_at_second_look_ms():
    judge = ScriptedJudge([False, True])
    settings = EndpointSettings(vad_threshold=0.5, silence_ms=320, second_look_ms=640, max_silence_ms=2000,
                                min_speech_ms=96, preroll_ms=0, max_turn_s=60.0)
    [event] = run(Endpointer(settings, judge=judge), [0.9] * 10 + [0.0] * 40)
    assert event.reason == "finished" and event.trailing_s == pytest.approx(0.64)
    assert judge.asked == [20, 30] and judge.pauses == [12]


def test_the_judge_is_asked_again_every_second_look_ms_until_max_silence():
    judge = ScriptedJudge([False] * 4)
    settings = EndpointSettings(vad_threshold=0.5, silence_ms=320, second_look_ms=640, max_silence_ms=2000,
                                min_speech_ms=96, preroll_ms=0, max_turn_s=60.0)
    [event] = run(Endpointer(settings, judge=judge), [0.9] * 10 + [0.0] * 80)
    assert judge.asked == [20, 30, 50, 70] and event.reason == "max_silence"  # 320, 640, 1280, 1920 ms
    assert event.trailing_s == pytest.approx(2.0, abs=0.04)


def test_a_blip_is_dropped_without_asking_the_judge():
    judge = ScriptedJudge([])
    assert run(Endpointer(JUDGED, judge=judge), [0.9] * 2 + [0.0] * 40) == []
    assert judge.asked == []
