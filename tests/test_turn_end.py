"""The semantic end of turn: the words signal, the judge's logic with stand-ins, and the real smart-turn model."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from voicereflect.smart_turn import SmartTurnModel
from voicereflect.stt import load_audio_file
from voicereflect.errors import TranscriptionError
from voicereflect.turn_end import PIECE_PAUSE_FRAMES, TurnEndJudge, sounds_unfinished
from voicereflect.types import SAMPLE_RATE, AudioClip, Transcript

DATA = Path(__file__).parent / "data"


@pytest.mark.parametrize("text", ["I went to see her and", "It was hard because", "So I told him the",
                                  "I was, um", "And then I thought,", "We talked about the...", "I felt like my",
                                  "Actually.", "Sorry.", "Well, actually.", "Wait!"])
def test_words_that_stop_mid_thought_sound_unfinished(text):
    assert sounds_unfinished(text)


@pytest.mark.parametrize("text", ["I went to see her.", "It was hard", "Why did I say that?", "", "Nothing else",
                                  "Sorry, I was late.", "Okay.", "Actually, I was relieved."])
def test_words_that_can_end_a_thought_do_not(text):
    assert not sounds_unfinished(text)


class FixedModel:
    def __init__(self, probability: float) -> None:
        self.probability = probability
        self.heard: list[int] = []

    def complete_probability(self, samples: np.ndarray) -> float:
        self.heard.append(len(samples))
        return self.probability


class ScriptedTranscriber:
    """Returns the next text for each clip, and records each clip's length and prompt."""

    def __init__(self, texts: list[str]) -> None:
        self.texts = list(texts)
        self.calls: list[tuple[int, str]] = []

    def transcribe(self, clip: AudioClip, prompt: str = "") -> Transcript:
        self.calls.append((len(clip.samples), prompt))
        return Transcript(text=self.texts.pop(0), duration_s=clip.duration_s)


def seconds(s: float) -> np.ndarray:
    return np.zeros(int(s * SAMPLE_RATE), np.float32)


def test_a_finished_voice_with_finished_words_ends_the_turn():
    judge = TurnEndJudge(model=FixedModel(0.9), transcriber=ScriptedTranscriber(["I talked to my sister."]))
    assert judge.finished(seconds(2)) is True
    assert judge.text_of(seconds(2.5), last_voiced_sample=2 * SAMPLE_RATE - 100) == "I talked to my sister."


def test_words_ending_on_a_connective_overrule_a_finished_voice():
    judge = TurnEndJudge(model=FixedModel(0.9), transcriber=ScriptedTranscriber(["I talked to my sister and"]))
    assert judge.finished(seconds(2)) is False
    assert judge.verdicts == [(0.9, "I talked to my sister and", False)]


def test_an_unfinished_voice_keeps_the_turn_open_whatever_the_words():
    judge = TurnEndJudge(model=FixedModel(0.1), transcriber=ScriptedTranscriber(["I talked to my sister."]))
    assert judge.finished(seconds(2)) is False


def test_a_long_turn_is_transcribed_piece_by_piece_with_the_earlier_words_as_prompt():
    stt = ScriptedTranscriber(["First piece,", "second piece and", "third piece."])
    judge = TurnEndJudge(model=FixedModel(0.9), transcriber=stt, min_segment_s=3.0)
    assert judge.finished(seconds(4)) is False  # "," : unfinished
    judge.resumed()  # 4 s >= 3 s: kept as a piece
    assert judge.finished(seconds(5)) is False  # only the new second is transcribed
    judge.resumed()  # 1 s < 3 s: not kept; transcribed again with what follows
    assert judge.finished(seconds(9)) is True
    assert stt.calls == [(4 * SAMPLE_RATE, ""), (1 * SAMPLE_RATE, "First piece,"), (5 * SAMPLE_RATE, "First piece,")]
    assert judge.text_of(seconds(9.5), last_voiced_sample=9 * SAMPLE_RATE) == "First piece, third piece."
    assert len(stt.calls) == 3  # the text at the end was already there


def test_speech_after_the_last_pause_is_transcribed_at_the_end():
    stt = ScriptedTranscriber(["Hello there.", "Hello there and more."])
    judge = TurnEndJudge(model=FixedModel(0.2), transcriber=stt)
    judge.finished(seconds(2))
    judge.resumed()  # under 3 s: not a piece of its own
    assert judge.text_of(seconds(4), last_voiced_sample=3 * SAMPLE_RATE) == "Hello there and more."
    assert stt.calls[-1] == (4 * SAMPLE_RATE, "")


def test_begin_forgets_the_previous_turn():
    stt = ScriptedTranscriber(["One two three four.", "Five."])
    judge = TurnEndJudge(model=FixedModel(0.2), transcriber=stt)
    judge.finished(seconds(4))
    judge.resumed()
    judge.begin()
    assert judge.text_of(seconds(1), last_voiced_sample=SAMPLE_RATE) == "Five."
    assert stt.calls[-1] == (SAMPLE_RATE, "")


@pytest.fixture(scope="module")
def smart_turn() -> SmartTurnModel:
    return SmartTurnModel()


def test_the_real_model_hears_a_finished_sentence_and_a_cut_off_one(smart_turn):
    jfk = load_audio_file(DATA / "jfk.flac").samples  # "...ask what you can do for your country." at 10.5 s
    end_of_speech = int(10.6 * SAMPLE_RATE)
    finished = np.concatenate([jfk[:end_of_speech], np.zeros(int(0.2 * SAMPLE_RATE), np.float32)])
    cut_off = np.concatenate([jfk[: int(8.0 * SAMPLE_RATE)], np.zeros(int(0.2 * SAMPLE_RATE), np.float32)])  # "ask what you"
    assert smart_turn.complete_probability(finished) > 0.5
    assert smart_turn.complete_probability(cut_off) < 0.5


def test_a_pause_is_transcribed_from_its_start_and_its_words_announced():
    heard: list[str] = []
    stt = ScriptedTranscriber(["I told her."])
    judge = TurnEndJudge(model=FixedModel(0.9), transcriber=stt, on_words=heard.append)
    judge.paused(seconds(2))
    assert judge.finished(seconds(2.2)) is True
    assert stt.calls == [(2 * SAMPLE_RATE, "")]  # transcribed once, from the pause's start
    assert heard == ["I told her."]


def test_a_pause_too_short_to_judge_does_not_end_a_piece():
    stt = ScriptedTranscriber(["A long first", "A long first part and the end."])
    judge = TurnEndJudge(model=FixedModel(0.9), transcriber=stt)
    judge.paused(seconds(4))
    judge._pending.result()  # transcribed, but the gap may have been inside a word
    judge.resumed()
    assert judge.finished(seconds(6)) is True
    assert stt.calls[1] == (6 * SAMPLE_RATE, "")  # the whole turn again, not from the gap
    assert judge.text_of(seconds(6), last_voiced_sample=6 * SAMPLE_RATE) == "A long first part and the end."


class ReadingsTranscriber(ScriptedTranscriber):
    """Returns (best, runner-up) readings."""

    def transcribe(self, clip: AudioClip, prompt: str = "") -> Transcript:
        best, runner_up = self.texts.pop(0)
        return Transcript(text=best, duration_s=clip.duration_s, runner_up=runner_up)


def test_a_second_look_at_the_same_pause_goes_by_the_words():
    stt = ScriptedTranscriber(["I snapped at a colleague."])
    model = FixedModel(0.3)
    judge = TurnEndJudge(model=model, transcriber=stt)
    assert judge.finished(seconds(3)) is False  # the voice sounds unfinished
    assert judge.finished(seconds(3.8)) is True  # a second later, a finished sentence ends the turn
    assert len(stt.calls) == 1 and len(model.heard) == 1  # neither asked again


def test_each_pause_is_looked_at_afresh():
    model = FixedModel(0.05)
    stt = ReadingsTranscriber([("I was there.", "I was there and"), ("I was there. And then it ended.", "")])
    judge = TurnEndJudge(model=model, transcriber=stt)
    assert judge.finished(seconds(3)) is False
    assert judge.finished(seconds(3.8)) is False  # unsure at 1 s
    judge.resumed()  # the person went on before the third look
    model.probability = 0.9
    assert judge.finished(seconds(5)) is True  # a first look again
    assert len(model.heard) == 2


def test_words_nearly_read_as_unfinished_hold_the_first_two_looks():
    """"end." with "and..." as the runner-up: not at 200 ms nor at 1 s, but by the words alone at 2 s."""
    stt = ReadingsTranscriber([("I saw my mother yesterday end.", "I saw my mother yesterday and...")])
    judge = TurnEndJudge(model=FixedModel(0.9), transcriber=stt)
    assert [judge.finished(seconds(s)) for s in (3, 3.8, 4.8)] == [False, False, True]


def test_a_runner_up_that_also_ends_a_sentence_changes_nothing():
    stt = ReadingsTranscriber([("I miss my dad.", "I miss my dad")])
    assert TurnEndJudge(model=FixedModel(0.9), transcriber=stt).finished(seconds(3)) is True


def test_later_looks_still_wait_after_a_connective():
    judge = TurnEndJudge(model=FixedModel(0.9), transcriber=ScriptedTranscriber(["I told her and"]))
    assert judge.finished(seconds(3)) is False
    assert judge.finished(seconds(3.8)) is False
    assert judge.finished(seconds(4.8)) is False


class GatedTranscriber(ScriptedTranscriber):
    """A ScriptedTranscriber whose first transcription waits until ``gate`` is set; None texts fail."""

    def __init__(self, texts: list[str | None]) -> None:
        super().__init__(texts)
        self.gate = threading.Event()

    def transcribe(self, clip: AudioClip, prompt: str = "") -> Transcript:
        if not self.calls:
            assert self.gate.wait(10)
        self.calls.append((len(clip.samples), prompt))
        text = self.texts.pop(0)
        if text is None:
            raise TranscriptionError("the model failed")
        return Transcript(text=text, duration_s=clip.duration_s)


def test_a_pause_between_words_ends_a_piece_without_waiting_for_its_words():
    stt = GatedTranscriber(["My sister called on Sunday,", "and we argued again."])
    judge = TurnEndJudge(model=FixedModel(0.9), transcriber=stt)
    judge.paused(seconds(4))
    judge.resumed(PIECE_PAUSE_FRAMES)  # went on 128 ms in: the listener is not held up by the transcription
    assert stt.calls == []
    stt.gate.set()
    judge.paused(seconds(6))
    assert judge.finished(seconds(6.2)) is True
    assert stt.calls == [(4 * SAMPLE_RATE, ""), (2 * SAMPLE_RATE, "My sister called on Sunday,")]  # only the rest
    assert judge.text_of(seconds(6.2), last_voiced_sample=6 * SAMPLE_RATE) == \
        "My sister called on Sunday, and we argued again."


def test_a_gap_shorter_than_a_piece_pause_is_not_one():
    stt = ScriptedTranscriber(["My sister called on", "My sister called on Sunday."])
    judge = TurnEndJudge(model=FixedModel(0.9), transcriber=stt)
    judge.paused(seconds(4))
    judge._pending.result()
    judge.resumed(PIECE_PAUSE_FRAMES - 1)
    assert judge.finished(seconds(6)) is True
    assert stt.calls[1] == (6 * SAMPLE_RATE, "")


def test_a_piece_that_could_not_be_transcribed_sends_the_whole_turn_to_be_transcribed_again():
    stt = GatedTranscriber([None, "and we argued again."])
    stt.gate.set()
    judge = TurnEndJudge(model=FixedModel(0.9), transcriber=stt)
    judge.paused(seconds(4))
    judge.resumed(PIECE_PAUSE_FRAMES)
    judge.paused(seconds(6))
    judge.finished(seconds(6.2))
    with pytest.raises(TranscriptionError):
        judge.text_of(seconds(6.2), last_voiced_sample=6 * SAMPLE_RATE)


def test_the_turn_can_end_while_kept_pieces_are_still_queued():
    """text_of waits for two kept pieces, the second queued behind the first, without deadlock."""
    stt = GatedTranscriber(["One two three,", "four five six,", "seven."])
    judge = TurnEndJudge(model=FixedModel(0.9), transcriber=stt)
    judge.paused(seconds(4))
    judge.resumed(PIECE_PAUSE_FRAMES)
    judge.paused(seconds(8))
    judge.resumed(PIECE_PAUSE_FRAMES)
    threading.Timer(0.2, stt.gate.set).start()
    result: list[str] = []
    ending = threading.Thread(target=lambda: result.append(judge.text_of(seconds(9), last_voiced_sample=9 * SAMPLE_RATE)))
    ending.start()
    ending.join(timeout=10)
    assert result == ["One two three, four five six, seven."]
    assert [prompt for _, prompt in stt.calls] == ["", "One two three,", "One two three, four five six,"]
