"""Levels, the session context, the responses and the safety plan, over a stand-in judge (tests/fakes.py).

The thresholds are the packaged ones (data/risk_levels.toml); the stand-in gives each phrase
fixed probabilities, so every rule here can be seen to fail.
"""

from __future__ import annotations

import pytest

from tests.fakes import ScriptedJudge
from voicereflect.safety import RiskChecker
from voicereflect.safety.checker import LEVELS, higher, judged_parts, thresholds
from voicereflect.safety.context import SessionRisk, SessionRules
from voicereflect.safety.plan import SafetyPlan, plan_sections
from voicereflect.safety.resources import crisis_resources
from voicereflect.safety.responses import (check_in_message, concern_message, crisis_message, direct_question,
                                           parse_check_in_answer)

RULES = thresholds()


def checker(phrases, **kwargs) -> RiskChecker:
    return RiskChecker(judge=ScriptedJudge(phrases), **kwargs)


def test_levels_follow_the_judges_probabilities():
    between = (RULES.check_in + RULES.concern) / 2
    judge = {"unsure": (between, 0.0), "heavy": (RULES.concern + 0.05, 0.0),
             "plan": (0.05, max(RULES.concern, RULES.crisis) + 0.05)}
    check = checker(judge).check
    assert check("a lovely walk").level == "none"
    assert check("feeling unsure about it all").level == "check_in"
    assert check("it is heavy today").level == "concern"
    assert check("there is a plan").level == "crisis"
    assert check("there is a plan").resources is not None and check("a lovely walk").resources is None


def test_a_trusted_pattern_gives_its_level_unless_the_judge_finds_the_turn_plainly_safe():
    assert checker({"die": (RULES.pattern_floor + 0.01, 0.0)}).check("I want to die").level == "concern"
    asked = checker({}).check("I want to die")  # the judge scores it below the floor
    assert asked.level == "check_in" and asked.reasons[0] == "pattern: suicide"
    assert checker({"jump": (0.5, 0.5)}).check("Which bridges are high enough to jump from").level == "crisis"


def test_a_pattern_only_in_a_past_clause_is_left_to_the_judge():
    text = "I used to cut myself years ago"
    assert checker({}).check(text).level == "none"
    assert RiskChecker(judge=False).check(text).level == "concern"  # no judge: recall first


def test_a_sentence_of_a_longer_turn_is_judged_on_its_own_with_a_margin():
    text = ("Work was fine today and lunch with Sam was nice. I gave the guitar away, I won't need it. "
            "Then I watched TV with my flatmate.")
    parts = judged_parts(text)
    assert "I gave the guitar away, I won't need it." in parts and text not in parts
    whole = {text.lower(): (0.01, 0.0)}  # the whole turn reads as ordinary
    near = checker({**whole, "guitar away": (RULES.concern + RULES.clause_margin / 2, 0.0)}).check(text)
    assert near.level == "check_in"  # alone the sentence must pass each threshold by the margin
    clear = checker({**whole, "guitar away": (RULES.concern + RULES.clause_margin + 0.01, 0.0)}).check(text)
    assert clear.level == "concern"


def test_a_short_turn_is_judged_whole():
    assert judged_parts("Lunch was nice. I gave the guitar away.") == []


def test_a_long_unpunctuated_stretch_is_cut_into_clauses():
    ramble = ("so um work was fine and I had lunch with Sam and the train was late again and I keep thinking "
              "nobody would notice if I was gone and anyway then I watched some telly and my sister rang "
              "about the weekend and we talked for ages")
    assert any(part.startswith("I keep thinking nobody would notice") for part in judged_parts(ramble))


def test_higher_orders_the_levels():
    assert LEVELS == ("none", "check_in", "concern", "crisis")
    assert higher("check_in", "concern") == "concern" and higher("crisis", "none") == "crisis"


# --- the whole session --------------------------------------------------------------------

RULES_OF_SESSION = SessionRules(window=3, decay=0.5, window_margin=0.0, build=0.9)


def test_risk_that_shows_only_across_turns_is_heard():
    # "church. the letters" exists only where the turns are joined: each turn alone is ordinary.
    judge = ScriptedJudge({"church. the letters": (0.05, max(RULES.concern, RULES.crisis) + 0.05)})
    session = SessionRisk(RiskChecker(judge=judge), rules=RULES_OF_SESSION)
    turns = ["I rehomed the dog.", "Sunday, while everyone is at church.", "The letters are written."]
    results = [session.check(t) for t in turns]
    assert [r.level for r in results] == ["none", "none", "crisis"]
    assert results[-1].reasons[-1].startswith("last 3 turns")
    assert " ".join(turns) in judge.seen


def test_worry_that_builds_asks_directly_but_one_heavy_turn_does_not():
    mild = (0.3, 0.0)  # each turn alone under asking
    assert mild[0] < RULES.check_in
    rules = SessionRules(window=1, decay=0.5, window_margin=0.0, build=0.55)  # 0.3, 0.45, 0.525, 0.5625
    building = SessionRisk(checker({"tired of it": mild}), rules=rules)
    levels = [building.check(t).level for t in ["so tired of it", "still tired of it", "always tired of it",
                                                "tired of it again"]]
    assert levels == ["none", "none", "none", "check_in"], levels
    assert building.check("lunch was fine").reasons == ()  # the level decays: no reason to ask again yet
    single = SessionRisk(checker({"tired of it": mild}), rules=rules)
    assert [single.check(t).level for t in ["so tired of it", "lunch was fine", "the bus was late",
                                            "we watched a film"]] == ["none"] * 4


def test_a_reply_is_checked_alone_and_not_remembered():
    session = SessionRisk(checker({"pills": (0.1, 0.9)}), rules=RULES_OF_SESSION)
    assert session.check_reply("Are the pills somewhere safe?").level == "crisis"
    assert session.turns == []


def test_escalate_raises_the_level_and_attaches_resources():
    session = SessionRisk(checker({}, locale="GB"), rules=RULES_OF_SESSION)
    raised = session.escalate(session.check("fine"), "concern", "answered yes")
    assert raised.level == "concern" and raised.reasons[-1] == "answered yes"
    assert raised.resources is not None and raised.resources.locale == "GB"


# --- what is said --------------------------------------------------------------------------


@pytest.mark.parametrize("answer,reading", [
    ("no", "no"), ("No, I'm not.", "no"), ("nope, just tired", "no"), ("God no, I'd never", "no"),
    ("not at all", "no"), ("yes", "yes"), ("sometimes", "yes"), ("I don't know", "yes"),
    ("no... well, maybe", "yes"), ("not really", "yes"), ("no but I think about it", "yes"),
    ("kind of", "yes"), ("what do you mean", "yes"), ("", "yes"),
])
def test_only_a_plain_no_to_the_direct_question_is_a_no(answer, reading):
    assert parse_check_in_answer(answer) == reading


def test_check_in_reflects_then_asks_directly():
    message = check_in_message("You said you're tired of all of it.")
    assert message.startswith("You said you're tired of all of it.") and message.endswith(direct_question())
    assert "ending your life" in direct_question() and "hurting yourself" in direct_question()


def test_concern_shows_the_plan_first_then_the_resources_and_the_therapist():
    result = checker({"heavy": (0.95, 0.0)}, locale="GB").check("it is heavy")
    plan = SafetyPlan().with_section("on_my_own", ["walk the dog"], "2026-12-03T00:00:00+00:00")
    message = concern_message(result, plan)
    assert message.index("walk the dog") < message.index("116 123") and "therapist" in message
    assert "safety plan" in concern_message(result, None) and "voicereflect safety plan" in concern_message(result)


def test_crisis_shows_emergency_services_and_the_plan():
    result = checker({"tonight": (0.1, 0.95)}, locale="US").check("tonight")
    plan = SafetyPlan().with_section("ask_for_help", ["my brother Sam"], "2026-12-03T00:00:00+00:00")
    message = crisis_message(result, plan)
    assert "911" in message and "988" in message and "my brother Sam" in message
    assert message.index("911") < message.index("my brother Sam")


# --- the safety plan -------------------------------------------------------------------------


def test_plan_sections_follow_stanley_brown():
    ids = [s.id for s in plan_sections()]
    assert ids[:6] == ["warning_signs", "on_my_own", "people_places", "ask_for_help", "professionals", "safer_space"]


def test_plan_round_trips_and_shows_crisis_lines_under_professionals():
    plan = (SafetyPlan().with_section("warning_signs", ["not sleeping", "  "], "t1")
            .with_section("professionals", ["Dr Ade, Tuesdays"], "t2"))
    assert plan.entries["warning_signs"] == ("not sleeping",) and plan.updated_at == "t2"
    assert SafetyPlan.from_dict(plan.to_dict()) == plan
    card = plan.card(crisis_resources("GB"))
    assert card.index("Dr Ade") < card.index("Samaritans") and "not sleeping" in card
    assert SafetyPlan().empty and not plan.empty
    with pytest.raises(ValueError):
        plan.with_section("nonsense", ["x"], "t3")
