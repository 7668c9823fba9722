"""The risk check: indirect phrasings fire, idioms do not; resources are correct and fresh."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from voicereflect.safety import RiskChecker, all_checked_dates, crisis_message, crisis_resources

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
    "I cut my hair short yesterday",
    "my phone battery died during the call",
    "the deadline is killing me",
    "I'm dying to see that film",
    "we cut back on spending this month",
    "I felt really embarrassed in the meeting",
    "My sister and I argued about our mother",
    "I killed it at the presentation",
]


@pytest.mark.parametrize("text,category", RISKY)
def test_risky_phrasings_fire(text, category):
    result = RiskChecker().check(text)
    assert result.risk and result.category == category, result


@pytest.mark.parametrize("text", BENIGN)
def test_idioms_and_everyday_lines_do_not_fire(text):
    assert not RiskChecker().check(text).risk


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
    result = RiskChecker(locale="GB").check("I want to die")
    message = crisis_message(result)
    assert "116 123" in message and "999" in message
    assert "continue, pause, or end" in message and "can't contact anyone" in message
