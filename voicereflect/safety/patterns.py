"""Layer 1 of the risk check: high-recall patterns over the clauses of a turn (``data/risk_patterns.toml``).

A turn is cut into sentences and clauses; clauses in a past or denied context ("I used
to...", "I'm not suicidal") or in someone else's story ("the character overdoses") are set
aside, so a pattern that matches only there is not trusted alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from voicereflect.safety.text import Clause, normalise, packaged_toml, windows


_Patterns = tuple[re.Pattern[str], ...]


@dataclass(frozen=True)
class _Rules:
    idioms: _Patterns
    resolved: _Patterns
    current: _Patterns
    current_near_risk: _Patterns
    story: _Patterns
    first_person: re.Pattern[str]
    categories: tuple[tuple[str, str, _Patterns], ...]
    cues: frozenset[str]
    breakers: frozenset[str]
    max_gap: int
    fillers: frozenset[str]
    terms: _Patterns  # risk words a negation can govern, besides the category patterns
    keep: _Patterns  # negated forms that still express ideation


@lru_cache(maxsize=1)
def _rules() -> _Rules:
    data = packaged_toml("risk_patterns.toml")
    negation = data["negation"]

    def compiled(patterns: list[str]) -> tuple[re.Pattern[str], ...]:
        return tuple(re.compile(p, re.IGNORECASE) for p in patterns)

    return _Rules(
        idioms=compiled(data["idioms"]), resolved=compiled(data["resolved"]), current=compiled(data["current"]),
        current_near_risk=compiled(data["current_near_risk"]),
        story=compiled(data["story"]), first_person=re.compile(data["first_person"]),
        categories=tuple((name, spec["severity"], compiled(spec["patterns"])) for name, spec in data["categories"].items()),
        cues=frozenset(negation["cues"]), breakers=frozenset(negation["breakers"]), max_gap=int(negation["max_gap"]),
        fillers=frozenset(negation.get("fillers", ())),
        terms=compiled(negation["terms"]), keep=compiled(negation["keep"]),
    )


def _cleaned(text: str) -> str:
    """Normalised, with idioms cut out."""
    cleaned = normalise(text)
    for idiom in _rules().idioms:
        cleaned = idiom.sub(" ", cleaned)
    return " ".join(cleaned.split())


# Clause boundaries: punctuation, dashes and conjunctions. "so" only when it starts a clause
# ("..., so I ...", "so what's the point"), not as an intensifier ("so tired").
_SENTENCE_END = re.compile(r"(?<=[.!?;])\s+|\n+")
_CLAUSE_BREAK = re.compile(
    r"[,:;\u2013\u2014]|\s-+\s|\b(?:and|but|because|cos|though|although|whereas|yet|or)\b"
    r"|\bso\b(?=\s+(?:i|im|ive|id|ill|we|he|she|they|it|its|thats|there|now|then|what|whats|nobody|no one|anyway)\b)",
    re.IGNORECASE)


def _occurrences(clause: str) -> list[re.Match[str]]:
    """Every risk phrase (category pattern or negation term) in a cleaned clause."""
    rules = _rules()
    patterns = [p for _, _, category in rules.categories for p in category] + list(rules.terms)
    return [m for p in patterns for m in p.finditer(clause)]


def _governed(clause: str, start: int) -> bool:
    """Whether a negation cue governs the phrase starting at ``start`` (see [negation])."""
    rules = _rules()
    gap = 0
    for word in reversed(clause[:start].split()):
        if word in rules.breakers:
            return False
        if word in rules.cues:
            return True
        if word not in rules.fillers:
            gap += 1
            if gap > rules.max_gap:
                return False
    return False


def _denied(clause: str) -> bool:
    """A clause whose every risk phrase is negated ("I'm not suicidal"), and none is kept."""
    if any(k.search(clause) for k in _rules().keep):
        return False
    found = _occurrences(clause)
    return bool(found) and all(_governed(clause, m.start()) for m in found)


def _resolved(sentence: str, clauses: list[str]) -> bool:
    # A present-time word ("today") keeps a past sentence current only in a clause about risk.
    rules = _rules()
    if not any(r.search(sentence) for r in rules.resolved) or any(c.search(sentence) for c in rules.current):
        return False
    return not any(_occurrences(c) and any(w.search(c) for w in rules.current_near_risk) for c in clauses)


def _clause_texts(sentence: str) -> list[str]:
    return [c.strip(" .!?-") for c in _CLAUSE_BREAK.split(sentence) if c and c.strip(" .!?-")]


def _about_a_story(sentence: str) -> bool:
    return any(p.search(sentence) for p in _rules().story)


def segment(text: str) -> list[Clause]:
    """The clauses of ``text`` in order, each marked past, denied, story or neither."""
    clauses = []
    for index, sentence in enumerate(sentences(text)):
        texts = _clause_texts(sentence)
        cleaned = [_cleaned(t) for t in texts]
        whole = _cleaned(sentence)
        past = _resolved(whole, cleaned)
        story = _about_a_story(whole)
        for raw, clean in zip(texts, cleaned):
            excluded = ("past" if past else "denied" if _denied(clean)
                        else "story" if story and not _rules().first_person.search(clean) else "")
            clauses.append(Clause(raw, clean, index, excluded))
    return clauses


def sentences(text: str) -> list[str]:
    """The sentences of ``text``, in order, as written."""
    return [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]


def split_units(text: str) -> list[str]:
    """The clauses of ``text`` and windows of neighbouring clauses, minus set-aside ones
    (see :func:`voicereflect.safety.text.windows`): what the judge sees of a long stretch."""
    return windows(segment(text), min_words=5)


@dataclass(frozen=True)
class PatternHit:
    """A layer-1 hit: ``resolved`` when every place it matched is past, denied or a story."""

    category: str
    severity: str
    matched: str
    resolved: bool


def check_patterns(text: str) -> PatternHit | None:
    """Layer 1: the best pattern hit (trusted first, then urgent first), or None."""
    clauses = segment(text)
    whole = _cleaned(text)
    hits = []
    for name, severity, patterns in _rules().categories:
        found = []
        for pattern in patterns:
            if not pattern.search(whole):
                continue
            spots = [(c, m) for c in clauses for m in pattern.finditer(c.cleaned)]
            trusted = [m for c, m in spots if not c.excluded and not _governed(c.cleaned, m.start())]
            # A match across clauses ("...tonight ... end it") is trusted unless all is past.
            resolved = not trusted and (bool(spots) or all(c.excluded == "past" for c in clauses))
            matched = (trusted or [m for _, m in spots] or [pattern.search(whole)])[0].group(0)
            found.append((resolved, severity != "urgent", name, PatternHit(name, severity, matched, resolved)))
        if found:
            hits.append(min(found, key=lambda h: h[:3]))
    return min(hits, key=lambda h: h[:3])[3] if hits else None


def severity_of(category: str) -> str:
    """The severity ("urgent" or "concern") of a risk category in risk_patterns.toml."""
    return next((severity for name, severity, _ in _rules().categories if name == category), "concern")

