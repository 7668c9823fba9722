"""The risk check and crisis resources: patterns, a small local embedding model, data files.

It runs on every user turn before anything else happens, and on every LLM reply, and it
works with the LLM, TTS, storage and network all down. A turn is cut into sentences and
clauses; clauses in a past or denied context ("I used to...", "I'm not suicidal") or in
someone else's story ("the character overdoses") are set aside. Two layers: high-recall patterns (risk_patterns.toml), then, when they find nothing
trustworthy, a semantic check (voicereflect.semantic_risk) over the remaining clauses and
windows of clauses. Without the embedding model the pattern layer runs alone.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from importlib import resources
from typing import Any

from voicereflect.semantic_risk import Clause, SemanticHit, SemanticRiskLayer, normalise, shared_layer, windows

__all__ = ["Clause", "CrisisLine", "CrisisResources", "PatternHit", "RiskChecker", "RiskResult", "SemanticHit",
           "SemanticRiskLayer", "all_checked_dates", "check_patterns", "crisis_message", "crisis_resources",
           "normalise", "segment", "spoken_crisis_message", "split_units"]


@dataclass(frozen=True)
class CrisisLine:
    """One verified crisis service."""

    name: str
    contact: str
    source: str
    checked: str


@dataclass(frozen=True)
class CrisisResources:
    """What to show for one locale: the emergency number and crisis lines."""

    locale: str
    emergency: str
    lines: tuple[CrisisLine, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data."""
        return {
            "locale": self.locale,
            "emergency": self.emergency,
            "lines": [{"name": l.name, "contact": l.contact, "source": l.source, "checked": l.checked} for l in self.lines],
        }

    def card(self) -> str:
        """The resources as a few printable lines."""
        rows = [f"  - {line.name}: {line.contact}" for line in self.lines]
        rows.append(f"  - In immediate danger: call {self.emergency}")
        return "\n".join(rows)


@lru_cache(maxsize=1)
def _resource_table() -> dict[str, Any]:
    text = (resources.files("voicereflect") / "data" / "crisis_resources.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)


def crisis_resources(locale: str = "") -> CrisisResources:
    """Resources for ``locale`` (e.g. "US", "GB"); unknown locales get the international fallback."""
    table = _resource_table()
    code = (locale or table["default_locale"]).upper()
    if code == "UK":
        code = "GB"
    entry = table["locales"].get(code, table["fallback"])
    lines = tuple(CrisisLine(**line) for line in entry["lines"])
    if code not in table["locales"]:
        code = "international"
    return CrisisResources(locale=code, emergency=entry["emergency"], lines=lines)


def all_checked_dates() -> list[tuple[str, date]]:
    """(entry name, date last checked) for every entry in the table (for the freshness test)."""
    table = _resource_table()
    entries = [*table["locales"].values(), table["fallback"]]
    return [(line["name"], date.fromisoformat(line["checked"])) for e in entries for line in e["lines"]]


@dataclass(frozen=True)
class RiskResult:
    """The outcome of a risk check."""

    risk: bool
    category: str = ""
    severity: str = ""
    matched: str = ""
    resources: CrisisResources | None = field(default=None, compare=False)
    layer: str = ""  # which layer fired: "pattern" or "semantic"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data: ``{risk, category, severity, matched, layer, resources}``."""
        return {
            "risk": self.risk,
            "category": self.category or None,
            "severity": self.severity or None,
            "matched": self.matched or None,
            "layer": self.layer or None,
            "resources": self.resources.to_dict() if self.resources else None,
        }


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
    data = tomllib.loads((resources.files("voicereflect") / "data" / "risk_patterns.toml").read_text(encoding="utf-8"))
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
    for index, sentence in enumerate(s.strip() for s in _SENTENCE_END.split(text) if s.strip()):
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


def split_units(text: str) -> list[str]:
    """What the semantic layer sees of ``text`` (see :func:`voicereflect.semantic_risk.windows`)."""
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


def _severity(category: str) -> str:
    return next((severity for name, severity, _ in _rules().categories if name == category), "concern")


class RiskChecker:
    """Flags suicidal thoughts or plans, self-harm, harm to others and danger from others."""

    def __init__(self, *, locale: str = "", semantic: bool | SemanticRiskLayer = True) -> None:
        """Args:
            locale: which crisis resources to attach to a positive result.
            semantic: False for the pattern layer only; True for the shared semantic layer;
                or a SemanticRiskLayer (e.g. over another encoder).
        """
        self.locale = locale
        if semantic is True:
            semantic = shared_layer()
        self.semantic: SemanticRiskLayer | None = semantic or None

    def warm(self) -> bool:
        """Load the embedding model and encode the exemplars now (e.g. in a startup thread).

        Returns:
            Whether the semantic layer is available (False when off or not installed).
        """
        return self.semantic.warm() if self.semantic is not None else False

    def warm_check(self) -> None:
        """Check one ordinary sentence, so the person's first turn does not pay for the first check.

        The first check after loading is ~0.2 s slower than the rest (the encoder's first
        pass); ``talk`` runs this on a thread while the greeting plays, not before "Ready".
        """
        self.check("I had a long day at work and I keep thinking about it.")

    def check(self, text: str) -> RiskResult:
        """Check one utterance: patterns first (urgent categories win), then semantic similarity.

        A pattern hit only in past, denied or story clauses is left to the semantic layer when it is
        on and its model is installed (it sees only the other clauses); otherwise it stands.
        """
        found = check_patterns(text)
        defer = found is not None and found.resolved and self.semantic is not None and self.semantic.available
        if found is not None and not defer:
            return RiskResult(True, found.category, found.severity, found.matched, crisis_resources(self.locale),
                              layer="pattern")
        hit = self.semantic.check(split_units(text)) if self.semantic is not None else None
        if hit is None:
            return RiskResult(risk=False)
        matched = f'similar to: "{hit.exemplar}" ({hit.score:.2f})'
        return RiskResult(True, hit.category, _severity(hit.category), matched, crisis_resources(self.locale),
                          layer="semantic")


def crisis_message(result: RiskResult) -> str:
    """What the assistant says and prints when a risk check fires: calm, short, no probing."""
    resources_ = result.resources or crisis_resources()
    first = (
        "It sounds like you might be in danger right now."
        if result.severity == "urgent"
        else "It sounds like you are carrying something really heavy right now."
    )
    return (
        f"{first} I'm an AI reflection tool and I can't contact anyone or help in a crisis, "
        "but people can, right now:\n"
        f"{resources_.card()}\n"
        "Your words are saved. Would you like to continue, pause, or end the session?"
    )


def spoken_crisis_message(result: RiskResult) -> str:
    """The short spoken version; the full card with numbers is on screen."""
    resources_ = result.resources or crisis_resources()
    first_line = resources_.lines[0] if resources_.lines else None
    line = f" You can reach {first_line.name}: {first_line.contact}." if first_line else ""
    danger = f" If you are in immediate danger, call {resources_.emergency}." if result.severity == "urgent" else ""
    return (
        "I'm an AI reflection tool and can't help in a crisis, but people can, right now."
        f"{danger}{line} I'm showing support options on your screen. "
        "Would you like to continue, pause, or end the session?"
    )
