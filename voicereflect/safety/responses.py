"""What the assistant says at each level of the risk check: fixed texts (``data/safety_responses.toml``).

Never model-written. ``check_in`` reflects and asks once, directly; ``concern`` validates,
shows the person's own safety plan and the resources, and suggests telling their
therapist; ``crisis`` is the fixed crisis message with emergency services first.
"""

from __future__ import annotations

import re
from typing import Any

from voicereflect.safety.checker import RiskResult
from voicereflect.safety.plan import SafetyPlan
from voicereflect.safety.resources import crisis_resources
from voicereflect.safety.text import normalise, packaged_toml


def _texts() -> dict[str, Any]:
    return packaged_toml("safety_responses.toml")


def check_in_message(reflection: str = "") -> str:
    """Reflect what was heard (the person's own words when given), then ask directly, once."""
    texts = _texts()["check_in"]
    return f"{reflection or texts['reflect']} {texts['question']}"


def direct_question() -> str:
    """The direct question alone, plain and kind (after the concern message has validated)."""
    return _texts()["check_in"]["question"]


def after_no_message() -> str:
    """Said after a plain "no" to the direct question; the session goes on, still listening."""
    return _texts()["check_in"]["after_no"]


def parse_check_in_answer(text: str) -> str:
    """"no" for a plain no to the direct question; "yes" for anything else (yes, unsure, unclear)."""
    rules = _texts()["answers"]
    words = normalise(text)
    plain_no = re.search(rules["no"], words) is not None and re.search(rules["hedges"], words) is None
    return "no" if plain_no else "yes"


def _plan_block(plan: SafetyPlan | None, intro: str, result: RiskResult) -> str:
    if plan is None or plan.empty:
        return ""
    return f"{intro}\n{plan.card(result.resources)}\n"


def concern_message(result: RiskResult, plan: SafetyPlan | None = None) -> str:
    """What is shown at ``concern``: validation, the safety plan first, the resources, the therapist."""
    texts = _texts()["concern"]
    resources_ = result.resources or crisis_resources()
    plan_part = _plan_block(plan, texts["plan_intro"], result) or f"{texts['no_plan']}\n"
    return (f"{texts['opening']}\n{plan_part}{texts['resources_intro']}\n{resources_.card()}\n"
            f"{texts['ai']} {texts['therapist']}")


def spoken_concern_message() -> str:
    """The short spoken version of :func:`concern_message` (the plan and numbers are on screen)."""
    return _texts()["concern"]["spoken"]


def crisis_message(result: RiskResult, plan: SafetyPlan | None = None) -> str:
    """What is shown at ``crisis``: calm, short, the resources (and the person's plan), no probing."""
    texts = _texts()["crisis"]
    resources_ = result.resources or crisis_resources()
    return (f"{texts['opening']} {texts['ai']}\n{resources_.card()}\n"
            f"{_plan_block(plan, texts['plan_intro'], result)}{texts['choice']}")


def spoken_crisis_message(result: RiskResult) -> str:
    """The short spoken version; the full card with numbers is on screen."""
    texts = _texts()["crisis"]
    resources_ = result.resources or crisis_resources()
    parts = [texts["spoken"]]
    parts.append(texts["spoken_emergency"].format(emergency=resources_.emergency))
    if resources_.lines:
        parts.append(texts["spoken_line"].format(name=resources_.lines[0].name, contact=resources_.lines[0].contact))
    parts += [texts["spoken_screen"], texts["choice"].split(". ", 1)[-1]]
    return " ".join(parts)


def event_note(event: dict[str, Any]) -> str:
    """What a saved safety event means, in a few words, for transcripts and exports.

    Events saved before the levels existed have no level: they showed crisis resources.
    """
    if event.get("answer") == "no":
        return "you answered no to the direct question"
    level = event.get("level", "crisis")
    if level == "check_in":
        return "voicereflect asked directly about suicide and self-harm"
    if level == "concern":
        return "your safety plan and support options were shown"
    details = ", ".join(str(event[k]) for k in ("category", "severity") if event.get(k))
    return f"crisis resources were shown{f' ({details})' if details else ''}"
