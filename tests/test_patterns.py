"""Counting themes, emotion words and people in the person's own words, on small hand-made sessions."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from voicereflect.errors import ConfigError
from voicereflect.patterns import count_patterns, find_names, load_word_lists, render_patterns, top
from voicereflect.types import SessionRecord, SessionSummary, Turn

REPLY = "Work, Marguerite, your sister and anger: what stands out about Monday?"  # assistant: never counted


def session(day: str, *said: str, number: int = 0) -> SessionRecord:
    """A session started at noon UTC on ``day`` (YYYY-MM-DD): each text said by the person, then a reply."""
    turns = []
    for text in said:
        turns += [Turn(role="user", text=text), Turn(role="assistant", text=REPLY)]
    summary = SessionSummary(id=f"{day.replace('-', '')}-120000-{number:04x}", started_at=f"{day}T12:00:00.000+00:00",
                             guide="open", turns=len(turns))
    return SessionRecord(summary=summary, turns=tuple(turns))


@pytest.fixture
def sessions():
    return [
        session("2026-03-03", "My boss moved the deadline and I felt anxious, really anxious.",
                "Then I told my sister and Marguerite\u2019s reply made me angry.", number=1),
        session("2026-03-05", "I wasn't angry at work today, just worried about my sister.", number=2),
        session("2026-03-11", "Marguerite called. I had lunch with Marguerite on Monday near the NHS clinic in London.",
                "Mum says I should sleep more.", number=3),
    ]


def by_name(items):
    return {item.name: item for item in items}


def test_counts_totals_sessions_dates_and_weeks(sessions):
    result = count_patterns(sessions)
    assert result.sessions == 3 and result.weeks == ("2026-03-02", "2026-03-09")
    themes, emotions, people = by_name(result.themes), by_name(result.emotions), by_name(result.people)

    work = themes["work"]  # boss, deadline (3 Mar); work (5 Mar)
    assert (work.total, work.sessions, work.first_seen, work.last_seen) == (3, 2, "2026-03-03", "2026-03-05")
    assert work.weekly == (("2026-03-02", 3), ("2026-03-09", 0))
    assert dict(work.words) == {"boss": 1, "deadline": 1, "work": 1}
    assert themes["family"].total == 3 and themes["sleep"].total == 1  # sister, sister, mum

    assert emotions["anxiety"].total == 3 and dict(emotions["anxiety"].words) == {"anxious": 2, "worried": 1}
    assert emotions["anger"].total == 2  # "wasn't angry" counts: words said, not meanings

    assert people["sister"].total == 2 and people["sister"].sessions == 2
    assert people["boss"].total == 1 and people["mum"].total == 1  # "Mum" is the relationship, not a name
    assert people["Marguerite"].total == 2  # the possessive, and "with Marguerite"; not "Marguerite called."
    assert people["Marguerite"].weekly == (("2026-03-02", 1), ("2026-03-09", 1))
    assert not {"Monday", "NHS", "London", "Then", "I"} & set(people)


def test_only_the_persons_turns_count(sessions):
    quiet = [session("2026-03-03", "Nothing much.")]
    result = count_patterns(quiet)
    assert result.themes == () and result.emotions == () and result.people == ()


def test_since_leaves_out_older_sessions(sessions):
    result = count_patterns(sessions, since=datetime(2026, 3, 9, tzinfo=timezone.utc))
    assert result.sessions == 1 and result.weeks == ("2026-03-09",)
    assert set(by_name(result.themes)) == {"family", "sleep"} and "sister" not in by_name(result.people)
    assert result.since == "2026-03-09T00:00:00+00:00"


def test_sorted_by_total_and_top_keeps_what_recurs(sessions):
    result = count_patterns(sessions)
    totals = [item.total for item in result.themes]
    assert totals == sorted(totals, reverse=True)
    assert [item.name for item in top(result.people)] == ["Marguerite", "sister"]


def test_names_are_capitalised_mid_sentence_and_not_common_words():
    lists = load_word_lists()
    lower = frozenset({"will", "work"})
    text = "I saw Zo\u00eb and Will at the Work party with Jean-Luc's sister. Priya texted. \"Sam left,\" I said to Ana-Maria and O'Brien."
    assert find_names(text, lists, lower) == ["Zo\u00eb", "Jean-Luc", "Ana-Maria", "O'Brien"]


def test_to_dict_is_json_and_render_lists_every_kind(sessions):
    result = count_patterns(sessions)
    data = json.loads(json.dumps(result.to_dict()))
    work = next(item for item in data["themes"] if item["name"] == "work")
    assert work["weekly"] == {"2026-03-02": 3, "2026-03-09": 0} and work["words"]["boss"] == 1
    text = render_patterns(result)
    assert "work: 3 times in 2 sessions (boss 1, deadline 1, work 1)" in text
    assert "Marguerite: 2 times in 2 sessions" in text and "per week: 3 0" in text
    assert render_patterns(count_patterns([])) == "No sessions in this period, so nothing to count.\n"


def test_every_word_list_compiles_and_a_broken_file_says_what_to_do(tmp_path):
    lists = load_word_lists()
    assert {"work", "family", "relationships", "health", "sleep", "money", "school", "friends", "self-worth",
            "loss"} <= set(lists.groups["themes"])
    assert lists.groups["people"]["partner"].search("my husband said")
    assert lists.groups["themes"]["work"].search("two Colleagues") and not lists.groups["themes"]["work"].search("homework")
    broken = tmp_path / "patterns.toml"
    broken.write_text("[themes\n")
    with pytest.raises(ConfigError, match="fix the file") as caught:
        load_word_lists(broken)
    assert "\n" not in str(caught.value)
