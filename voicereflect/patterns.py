"""Patterns in the person's own words over time: themes, emotion words and people, counted locally.

No model reads anything here: each of the person's turns (role "user"; assistant turns are
never counted) is matched against the word lists in ``data/patterns.toml``. The counts say
which words were said, when and how often. They are not a reading of what was meant:
"I'm not angry" counts "angry", and "it didn't work out" counts "work".
"""

from __future__ import annotations

import re
import tomllib
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta, timezone
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Sequence

from voicereflect.errors import ConfigError
from voicereflect.types import SessionRecord

KINDS = ("themes", "emotions", "people")
_QUOTES = str.maketrans({"\u2019": "'", "\u2018": "'"})
_WORD = re.compile(r"[^\W\d_]+(?:[-'][^\W\d_]+)*")
_SENTENCE_END = ".!?\u2026\n"


@dataclass(frozen=True)
class PatternCount:
    """How often one theme, emotion family or person came up in the period.

    Attributes:
        kind: "themes", "emotions" or "people".
        name: the theme or family ("work", "anxiety"), relationship label ("sister") or a
            name as said ("Marguerite").
        total: how many times its words were said.
        sessions: in how many sessions.
        first_seen: local date (YYYY-MM-DD) of the first session it came up in.
        last_seen: local date of the last one.
        weekly: ``(monday, count)`` for every week of the period, zeros included.
        words: the words heard and how often, most frequent first (e.g. ``("boss", 2)``).
    """

    kind: str
    name: str
    total: int
    sessions: int
    first_seen: str
    last_seen: str
    weekly: tuple[tuple[str, int], ...]
    words: tuple[tuple[str, int], ...]

    @property
    def label(self) -> str:
        """The name for display: "shame-and-guilt" reads "shame and guilt"."""
        return self.name.replace("-and-", " and ")


@dataclass(frozen=True)
class Patterns:
    """Counts over a period, most frequent first within each kind.

    Attributes:
        since: ISO start of the period, or None for everything.
        sessions: sessions in the period.
        weeks: the Mondays (local dates) from the first session's week to the last's.
        themes, emotions, people: one :class:`PatternCount` per item said at least once.
    """

    since: str | None
    sessions: int
    weeks: tuple[str, ...]
    themes: tuple[PatternCount, ...]
    emotions: tuple[PatternCount, ...]
    people: tuple[PatternCount, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data; ``weekly`` and ``words`` become ``{key: count}`` objects."""
        data = asdict(self)
        for kind in KINDS:
            for item in data[kind]:
                item["weekly"] = dict(item["weekly"])
                item["words"] = dict(item["words"])
        data["weeks"] = list(self.weeks)
        return data


@dataclass(frozen=True)
class WordLists:
    """The compiled word lists: one regular expression per theme, family and relationship."""

    groups: dict[str, dict[str, re.Pattern[str]]]
    known: re.Pattern[str]
    not_names: frozenset[str]


# -- time ---------------------------------------------------------------------------


def local_time(iso: str) -> datetime:
    """An ISO time (UTC as stored) as an aware local datetime; a naive time is taken as UTC."""
    when = datetime.fromisoformat(iso)
    return (when if when.tzinfo else when.replace(tzinfo=timezone.utc)).astimezone()


def week_of(day: date) -> date:
    """The Monday of the week ``day`` falls in."""
    return day - timedelta(days=day.weekday())


def records_since(store: Any, since: datetime | None) -> list[SessionRecord]:
    """The sessions of ``store`` that started at or after ``since`` (all if None), read whole, oldest first.

    Only those sessions' files are opened: the dates come from the index.
    """
    return [store.get_session(s.id) for s in store.list_sessions()
            if since is None or local_time(s.started_at) >= since]


def in_period(records: Iterable[SessionRecord], since: datetime | None) -> list[SessionRecord]:
    """The records that started at or after ``since`` (all of them if None), oldest first."""
    chosen = [r for r in records if since is None or local_time(r.summary.started_at) >= since]
    return sorted(chosen, key=lambda r: (r.summary.started_at, r.summary.id))


# -- word lists ---------------------------------------------------------------------


def _term(entry: str) -> str:
    words = entry.strip().lower().rstrip("*").split()
    return r"\s+".join(re.escape(w) for w in words) + (r"[\w'-]*" if entry.strip().endswith("*") else "")


def _compile(entries: Sequence[str]) -> re.Pattern[str]:
    alternatives = sorted({_term(e) for e in entries if e.strip()}, key=len, reverse=True)
    return re.compile(r"(?<!\w)(?:" + "|".join(alternatives) + r")(?!\w)", re.IGNORECASE)


@lru_cache(maxsize=4)
def load_word_lists(path: Path | None = None) -> WordLists:
    """Read and compile the word lists (default: the bundled ``data/patterns.toml``).

    Raises:
        ConfigError: the file is not valid TOML or a list is not a list of strings.
    """
    source = path or resources.files("voicereflect") / "data" / "patterns.toml"
    try:
        data = tomllib.loads(source.read_text(encoding="utf-8"))
        groups = {kind: {name: _compile(entries) for name, entries in data[kind].items()} for kind in KINDS}
        every = [e for kind in KINDS for entries in data[kind].values() for e in entries]
        not_names = frozenset(w.lower() for w in data["names"]["not_names"])
    except (OSError, tomllib.TOMLDecodeError, KeyError, AttributeError, re.error) as exc:
        raise ConfigError(f"Word lists {source} are unreadable ({exc}); fix the file or reinstall voicereflect.") from exc
    return WordLists(groups=groups, known=_compile(every), not_names=not_names)


# -- counting -----------------------------------------------------------------------


def spoken_texts(record: SessionRecord) -> list[str]:
    """The person's own turns of a session (assistant turns never), quotes normalised."""
    return [t.text.translate(_QUOTES) for t in record.turns if t.role == "user" and t.text.strip()]


def find_names(text: str, lists: WordLists, lower_words: frozenset[str]) -> list[str]:
    """Capitalised words in ``text`` that look like people's names.

    A word counts when it is capitalised (not all capitals), is not the first word of a
    sentence, and is not a common word: not in ``[names] not_names``, not in any word list,
    and never said in lower case (``lower_words``). So a name said only at the start of a
    sentence ("Marguerite called me.") is missed, and a name that is also a word the
    person uses ("Will", "will") is skipped: simple rules, stated rather than guessed around.
    """
    names = []
    for match in _WORD.finditer(text):
        word = re.sub(r"'s$", "", match.group())
        if len(word) < 2 or not all(p[:1].isupper() and (p[1:].islower() or len(p) == 1) for p in re.split("[-']", word)):
            continue  # not capitalised, or an acronym ("NHS")
        before = text[: match.start()].rstrip(" \t\"'(\u201c[")
        lowered = word.lower()
        if not before or before[-1] in _SENTENCE_END or lowered in lists.not_names or lowered in lower_words:
            continue
        if lists.known.fullmatch(lowered):
            continue
        names.append(word)
    return names


def _lower_words(texts: Iterable[str]) -> frozenset[str]:
    return frozenset(w for text in texts for w in _WORD.findall(text) if w.islower())


def _hits(text: str, lists: WordLists, lower_words: frozenset[str]) -> Iterable[tuple[str, str, str]]:
    """Every ``(kind, name, word)`` heard in one turn."""
    for kind in KINDS:
        for name, pattern in lists.groups[kind].items():
            for match in pattern.finditer(text):
                yield kind, name, " ".join(match.group().lower().split())
    for name in find_names(text, lists, lower_words):
        yield "people", name, name


def count_patterns(records: Iterable[SessionRecord], since: datetime | None = None,
                   lists: WordLists | None = None) -> Patterns:
    """Count themes, emotion words and people in the person's turns of the sessions since ``since``.

    Args:
        records: whole sessions, in any order; only those started at or after ``since`` count.
        since: an aware datetime, or None for every session.
        lists: compiled word lists (default: the bundled ones).

    Returns:
        Plain :class:`Patterns`, each kind sorted by total (then name).
    """
    lists = lists or load_word_lists()
    chosen = in_period(records, since)
    lower_words = _lower_words(t for r in chosen for t in spoken_texts(r))
    weeks = _weeks([local_time(r.summary.started_at).date() for r in chosen])
    words: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    weekly: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    days: dict[tuple[str, str], set[date]] = defaultdict(set)
    sessions: dict[tuple[str, str], set[str]] = defaultdict(set)
    for record in chosen:
        day = local_time(record.summary.started_at).date()
        for text in spoken_texts(record):
            for kind, name, word in _hits(text, lists, lower_words):
                key = (kind, name)
                words[key][word] += 1
                weekly[key][week_of(day).isoformat()] += 1
                days[key].add(day)
                sessions[key].add(record.summary.id)
    counts: dict[str, list[PatternCount]] = {kind: [] for kind in KINDS}
    for (kind, name), heard in words.items():
        counts[kind].append(PatternCount(
            kind=kind, name=name, total=sum(heard.values()), sessions=len(sessions[(kind, name)]),
            first_seen=min(days[(kind, name)]).isoformat(), last_seen=max(days[(kind, name)]).isoformat(),
            weekly=tuple((week, weekly[(kind, name)][week]) for week in weeks),
            words=tuple(sorted(heard.items(), key=lambda item: (-item[1], item[0])))))
    ordered = {kind: tuple(sorted(items, key=lambda c: (-c.total, -c.sessions, c.name.lower())))
               for kind, items in counts.items()}
    return Patterns(since=since.isoformat() if since else None, sessions=len(chosen), weeks=weeks, **ordered)


def _weeks(days: Sequence[date]) -> tuple[str, ...]:
    if not days:
        return ()
    monday, last = week_of(min(days)), week_of(max(days))
    result = []
    while monday <= last:
        result.append(monday.isoformat())
        monday += timedelta(days=7)
    return tuple(result)


def top(items: Sequence[PatternCount], limit: int = 5, min_total: int = 2) -> list[PatternCount]:
    """The ``limit`` most frequent items said at least ``min_total`` times (for short summaries)."""
    return [item for item in items if item.total >= min_total][:limit]


# -- terminal -----------------------------------------------------------------------

_HEADINGS = {"themes": "Themes", "emotions": "Emotion words (counted, not interpreted)", "people": "People"}


def describe(item: PatternCount, max_words: int = 4) -> str:
    """One line: ``work: 7 times in 3 sessions (work 4, boss 2, deadline 1)``."""
    times = "once" if item.total == 1 else f"{item.total} times"
    sessions = "1 session" if item.sessions == 1 else f"{item.sessions} sessions"
    heard = ", ".join(f"{word} {count}" for word, count in item.words[:max_words])
    more = ", ..." if len(item.words) > max_words else ""
    said = "" if item.words == ((item.name, item.total),) else f" ({heard}{more})"
    return f"{item.label}: {times} in {sessions}{said}"


def render_patterns(patterns: Patterns, limit: int = 10) -> str:
    """Patterns as plain text for the terminal: per kind, the top ``limit`` with weekly counts."""
    if not patterns.sessions:
        return "No sessions in this period, so nothing to count.\n"
    first, last = patterns.weeks[0], patterns.weeks[-1]
    lines = [f"Words from your own turns in {patterns.sessions} session{'s' if patterns.sessions != 1 else ''} "
             f"(weeks of {first} to {last}), counted on this machine.", ""]
    for kind in KINDS:
        items = getattr(patterns, kind)
        lines.append(f"{_HEADINGS[kind]}:")
        if not items:
            lines.append("  none found")
        for item in items[:limit]:
            weekly = " ".join(str(count) for _, count in item.weekly)
            span = item.first_seen if item.first_seen == item.last_seen else f"{item.first_seen} to {item.last_seen}"
            lines.append(f"  {describe(item)}")
            lines.append(f"      {span}; per week: {weekly}" if len(item.weekly) > 1 else f"      {span}")
        if len(items) > limit:
            lines.append(f"  ... and {len(items) - limit} more (--json shows all)")
        lines.append("")
    return "\n".join(lines)
