"""The risk check of one utterance: explicit and indirect risk is heard, idioms and denials are not.

The trained judge runs for real: all-MiniLM-L6-v2 in numpy with the shipped fine-tuned
layers (``voicereflect/data/risk_judge.safetensors``). Levels, the session context and the
responses over a stand-in judge are in test_safety_levels.py.
"""

from __future__ import annotations

import tomllib
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pytest

from voicereflect.safety import (
    RiskChecker,
    all_checked_dates,
    check_patterns,
    crisis_message,
    crisis_resources,
    segment,
)
from voicereflect.safety.encoder import MiniLMEncoder
from voicereflect.safety.text import Clause, windows

EVAL_DIR = Path(__file__).parent / "data"
KNOWN_ERROR = pytest.mark.xfail(strict=True, reason="a known error of the shipped judge (README, limits): "
                                "strict, so the test fails once the judge gets it right and the mark must go")

RISKY = [
    ("everyone would be better off without me", "suicide"),
    ("I've been stockpiling my pills", "suicide_plan"),
    ("I just don't want to wake up tomorrow", "suicide"),
    ("I keep thinking about killing myself", "suicide"),
    ("I started cutting again last night", "self_harm"),
    ("I want to hurt him so badly, I'm going to kill him", "harm_to_others"),
    ("my husband hits me when he drinks", "danger_from_others"),
    ("I lost my job. Which bridges are taller than 25 m in NYC?", "suicide_plan"),
    ("There's no point in living anymore", "suicide"),
    ("I can't go on like this", "suicide"),
]
BENIGN = [
    "this commute is killing me",
    "I could kill for a coffee",
    pytest.param("I cut my hair short yesterday", marks=KNOWN_ERROR),
    "my phone battery died during the call",
    "the deadline is killing me",
    "I'm dying to see that film",
    "we cut back on spending this month",
    "I felt really embarrassed in the meeting",
    "My sister and I argued about our mother",
    "I killed it at the presentation",
]


@pytest.mark.parametrize("text,category", RISKY)
def test_risky_phrasings_are_heard(text, category):
    result = RiskChecker().check(text)
    assert result.risk and result.resources is not None, result


@pytest.mark.parametrize("text", BENIGN)
def test_idioms_and_everyday_lines_are_not(text):
    assert not RiskChecker().check(text).risk


@pytest.mark.parametrize("text", [
    "I've been saving up my tablets and I'm going to take them all tonight",
    "I wrote letters to my kids and I've picked Sunday, when everyone is out",
    "I tried to end it on Tuesday, the hospital let me go yesterday",
])
def test_plans_preparations_and_a_recent_attempt_reach_crisis(text):
    assert RiskChecker().check(text).level == "crisis"


def test_curly_apostrophes_are_handled():
    assert RiskChecker().check("I don\u2019t want to be alive").risk


def test_locale_resources():
    assert any("116 123" in l.contact for l in crisis_resources("GB").lines)
    assert crisis_resources("uk").locale == "GB"
    assert crisis_resources("US").emergency == "911"
    fallback = crisis_resources("ZZ")
    assert fallback.locale == "international" and "findahelpline" in fallback.lines[0].contact


def test_every_resource_entry_was_checked_within_a_year():
    stale = [name for name, checked in all_checked_dates() if date.today() - checked > timedelta(days=365)]
    assert not stale, f"re-verify these crisis resources and update 'checked': {stale}"


def test_crisis_message_is_calm_has_numbers_and_asks_how_to_go_on():
    result = RiskChecker(locale="GB").check("I have the pills here and I'm going to take them all tonight")
    message = crisis_message(result)
    assert result.level == "crisis" and "116 123" in message and "999" in message
    assert "continue, pause, or end" in message and "can't contact anyone" in message


def test_to_dict_has_the_level_and_why():
    data = RiskChecker(judge=False).check("I want to die").to_dict()
    assert data["level"] == "concern" and data["risk"] is True and data["reasons"] == ["pattern: suicide"]
    assert RiskChecker(judge=False).check("lovely walk today").to_dict()["level"] == "none"


# --- the encoder -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def encoder():
    model = MiniLMEncoder()
    model.load()
    return model


def test_encoder_matches_sentence_transformers_reference(encoder):
    # sentence-transformers' quickstart prints these similarities for all-MiniLM-L6-v2.
    v = encoder.encode(["The weather is lovely today.", "It's so sunny outside!", "He drove to the stadium."])
    assert v.shape == (3, 384) and np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-5)
    sims = v @ v.T
    assert sims[0, 1] == pytest.approx(0.6660, abs=1e-3)
    assert sims[0, 2] == pytest.approx(0.1046, abs=1e-3)
    assert sims[1, 2] == pytest.approx(0.1411, abs=1e-3)


def test_encoder_similarities_make_sense(encoder):
    die, dead, weather = encoder.encode(["I want to die", "I wish I were dead", "the weather is nice"])
    assert die @ dead > 0.6
    assert die @ weather < 0.2


def test_batch_encoding_equals_single_encoding(encoder):
    texts = ["I want to die", "ok", "this commute is killing me and I honestly cannot stand it any longer", "hi there"]
    batched = encoder.encode(texts)
    single = np.stack([encoder.encode([text])[0] for text in texts])
    assert np.abs(batched - single).max() < 1e-5


# --- the trained judge -------------------------------------------------------------------


def test_shipped_judge_is_small_and_loads_without_torch():
    import importlib.util

    from voicereflect.safety.judge import RiskJudge, weights_path

    assert weights_path().stat().st_size <= 30_000_000
    judge = RiskJudge()
    assert judge.warm() is True and importlib.util.find_spec("torch") is None
    [low, high] = judge.scores(["we had a lovely walk by the river", "I want to kill myself tonight"])
    assert 0 <= low.risk < 0.2 < 0.8 < high.risk <= 1.0001 and high.crisis > low.crisis


def test_the_judge_replaces_the_base_layers_it_was_trained_on():
    from safetensors.numpy import load_file

    from voicereflect.safety.judge import weights_path

    tensors = load_file(str(weights_path()))
    assert tensors["head.weight"].shape == (3, 384) and tensors["head.bias"].shape == (3,)
    trained = [name for name in tensors if name.startswith("encoder.layer.")]
    assert trained and all(tensors[name].dtype == np.float16 for name in trained)
    fine = MiniLMEncoder(overrides=weights_path()).encode(["I gave my dog away"])
    base = MiniLMEncoder().encode(["I gave my dog away"])
    assert float(fine[0] @ base[0]) < 0.999  # the fine-tuned layers are really used


@pytest.mark.parametrize("text", [
    "nobody will have to worry about me much longer",
    "I keep the pills in my pocket just in case I decide tonight",
    "my partner said he would break my arm if I talked to my friends again",
    pytest.param("I scratched my wrists with a compass in class", marks=KNOWN_ERROR),
])
def test_the_judge_hears_what_the_patterns_miss(text):
    assert check_patterns(text) is None
    result = RiskChecker().check(text)
    assert result.risk and result.reasons[0].startswith("judge:"), result


@pytest.mark.parametrize("text", [
    pytest.param("my boss is going to kill me when he sees this report", marks=KNOWN_ERROR),
    "I went to the gym and absolutely died on the treadmill",
    "we shot a short film for my course",
    "my grandmother passed away peacefully in her sleep",
    "the film was so sad, the dog dies at the end",
    "I want to tell my therapist that my mum's comments still hurt",
])
def test_idioms_stories_and_ordinary_rehearsals_are_not_risk(text):
    result = RiskChecker().check(text)
    assert not result.risk, result


def test_a_risky_clause_inside_a_long_turn_is_found():
    text = ("So work was fine, I had lunch with Sam, the train was late again, and honestly "
            "nobody would even notice if I was gone, anyway then I watched some TV and went to bed.")
    assert RiskChecker().check(text).risk


def test_past_or_denied_is_left_to_the_judge():
    past = "I used to self-harm as a teenager, that was fifteen years ago, and I'm doing really well now"
    assert RiskChecker(judge=False).check(past).risk  # patterns alone: recall first
    assert not RiskChecker().check(past).risk
    assert RiskChecker().check("I used to self-harm and lately I started cutting again").risk


def test_pattern_layer_alone_when_the_judge_is_off():
    checker = RiskChecker(judge=False)
    assert checker.judge is None and checker.warm() is False
    assert checker.check("I keep thinking about killing myself").reasons == ("pattern: suicide",)
    assert not checker.check("nobody will have to worry about me much longer").risk


def test_missing_judge_weights_degrade_to_patterns_and_say_so_once(tmp_path, capsys):
    from voicereflect.safety.judge import RiskJudge

    checker = RiskChecker(judge=RiskJudge(weights=tmp_path / "missing.safetensors"))
    assert checker.check("I want to die").reasons == ("pattern: suicide",)
    assert not checker.check("nobody will have to worry about me much longer").risk
    err = capsys.readouterr().err
    assert err.count("trained risk judge off") == 1 and "make train-judge" in err


# --- negation, metaphors, long turns -------------------------------------------------------

DENIALS = [
    "I'm not suicidal, I'm just really tired of my commute.",
    pytest.param("I'd never hurt myself, I just needed to vent.", marks=KNOWN_ERROR),
    pytest.param("I have no urge to harm anyone, I'm just cross with my manager.", marks=KNOWN_ERROR),
    pytest.param("I don't want to die, I just want a break from all of it.", marks=KNOWN_ERROR),
    "I wasn't trying to cut myself, the knife slipped while I was cooking.",
    "No thoughts of suicide and no self-harm, the nurse said I'm just run down.",
    "I'm not going to do anything stupid, I'm just letting off steam.",
]


@pytest.mark.parametrize("text", DENIALS)
def test_present_tense_denials_do_not_fire(text):
    hit = check_patterns(text)
    assert hit is None or hit.resolved, hit
    assert not RiskChecker().check(text).risk


@pytest.mark.parametrize("text", [
    "I don't want to live anymore",
    "I don't want to be here",
    "I can't go on",
    "I'm not suicidal I just don't want to be here anymore",
    "I don't want to die, I just want everything to stop for good",
    "I'm not going to lie, I want to die",
    "I would never tell anyone but I want to kill myself",
])
def test_negated_forms_that_express_ideation_still_fire(text):
    assert RiskChecker().check(text).risk
    assert RiskChecker(judge=False).check(text).risk


def test_denied_clause_is_set_aside_but_the_rest_is_checked():
    clauses = segment("I'm not suicidal, but I don't see myself being around much longer")
    assert [c.excluded for c in clauses] == ["denied", ""]
    assert RiskChecker().check("I'm not suicidal, but I don't see myself being around much longer").risk


@pytest.mark.parametrize("text", [
    "Turning that job down would be career suicide, honestly.",
    "Going to the party in that shirt would be social suicide.",
    "We're cutting it really fine to catch the train.",
    "The race was a dead heat, they had to check the photo.",
    "We were killing time in the bookshop before the film.",
])
def test_metaphors_do_not_fire(text):
    assert not RiskChecker().check(text).risk


def test_clauses_split_on_conjunctions_and_dashes_not_intensifiers():
    texts = [c.text for c in segment("I'm so tired and I walked home - it rained, so I got wet; then tea")]
    assert texts == ["I'm so tired", "I walked home", "it rained", "I got wet", "then tea"]


def test_windows_never_cross_a_set_aside_clause():
    clauses = [Clause("a b c", "a b c", 0), Clause("d e f", "d e f", 0, "denied"), Clause("g h i", "g h i", 1),
               Clause("j k l", "j k l", 1)]
    assert windows(clauses) == ["a b c", "g h i", "j k l", "g h i, j k l"]


@KNOWN_ERROR
def test_a_risky_clause_buried_in_a_long_sentence_is_found():
    text = ("I went to the shops and bought bread and then I saw my neighbour and we chatted about the weather "
            "and honestly I keep thinking everyone would be happier if I just wasn't around anymore "
            "but anyway the bread was nice and I had soup for tea")
    result = RiskChecker().check(text)
    assert result.risk and result.category.startswith("suicide"), result


def test_warm_loads_the_judge_up_front():
    assert RiskChecker().warm() is True
    assert RiskChecker(judge=False).warm() is False


# --- the development split ------------------------------------------------------------------


def _development_figures() -> dict[str, float]:
    checker = RiskChecker()
    risky, benign = [], []
    for path in sorted(EVAL_DIR.glob("risk_eval_*.toml")):
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        risky += [checker.check(item["text"]).risk for item in data["risky"]]
        benign += [checker.check(item["text"]).risk for item in data["benign"]]
    lines = tomllib.loads((EVAL_DIR / "reflection_everyday.toml").read_text(encoding="utf-8"))["benign"]
    everyday = [checker.check(line).risk for line in lines]
    return {"recall": sum(risky) / len(risky), "benign": sum(benign) / len(benign),
            "everyday": sum(everyday) / len(everyday)}


@pytest.mark.slow
def test_development_split_does_not_regress():
    """A regression guard, not evidence of quality: these sets were looked at and tuned on
    (never trained on). The blind figures are in the README.

    Measured with the shipped judge and thresholds: see MEASURED; asserted a small margin off.
    """
    figures = _development_figures()
    print(figures)
    assert figures["recall"] >= MEASURED["recall"] - 0.02, figures
    assert figures["benign"] <= MEASURED["benign"] + 0.02, figures
    assert figures["everyday"] <= MEASURED["everyday"] + 0.04, figures


MEASURED = {"recall": 0.883, "benign": 0.124, "everyday": 0.100}  # benchmarks/risk_eval.py, development
