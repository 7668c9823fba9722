"""The risk check of one utterance: a level (none, check_in, concern, crisis) and its reasons.

It runs on every user turn before anything else happens, and on every LLM reply, and it
works with the LLM, TTS, storage and network all down. Two layers: high-recall patterns
for explicit phrasings (:mod:`voicereflect.safety.patterns`), and the trained judge
(:mod:`voicereflect.safety.judge`) over the whole turn and its clauses. Where the judge is
unsure the person is asked directly (``check_in``) instead of being shown crisis numbers
or passed over. The thresholds live in ``data/risk_levels.toml``. Without the judge's
model the pattern layer runs alone, every hit at its own level (recall first).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from voicereflect.safety.judge import Judge, JudgeScore, shared_judge
from voicereflect.safety.patterns import PatternHit, check_patterns, sentences, split_units
from voicereflect.safety.resources import CrisisResources, crisis_resources
from voicereflect.safety.text import packaged_toml

LEVELS = ("none", "check_in", "concern", "crisis")


def higher(first: str, second: str) -> str:
    """The more serious of two levels."""
    return max(first, second, key=LEVELS.index)


@dataclass(frozen=True)
class Thresholds:
    """When the judge's calibrated probabilities reach each level (``data/risk_levels.toml``)."""

    check_in: float  # risk probability: unsure, so ask directly
    concern: float  # risk probability: offer the safety plan and resources
    crisis: float  # crisis probability, with risk at least ``concern``
    pattern_floor: float  # a trusted pattern hit below this judge risk is asked about instead
    clause_margin: float  # a clause must exceed the thresholds by this much to decide alone


@lru_cache(maxsize=1)
def thresholds() -> Thresholds:
    """The packaged thresholds, read once."""
    data = packaged_toml("risk_levels.toml")
    return Thresholds(**{key: float(value) for key, value in data["line"].items()})


@dataclass(frozen=True)
class RiskResult:
    """The outcome of a risk check: a level, why, and the resources to show when it is not none."""

    level: str = "none"
    reasons: tuple[str, ...] = ()
    category: str = ""
    matched: str = ""
    score: float = 0.0  # the judge's risk probability (the highest over the turn and its clauses)
    resources: CrisisResources | None = field(default=None, compare=False)

    @property
    def risk(self) -> bool:
        """Whether anything above ``none`` was heard."""
        return self.level != "none"

    @property
    def severity(self) -> str:
        """"urgent" for crisis (emergency services first), "concern" for the other levels above none."""
        return "urgent" if self.level == "crisis" else "concern" if self.risk else ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data: ``{level, risk, reasons, category, severity, matched, score, resources}``."""
        return {
            "level": self.level,
            "risk": self.risk,
            "reasons": list(self.reasons),
            "category": self.category or None,
            "severity": self.severity or None,
            "matched": self.matched or None,
            "score": round(self.score, 3),
            "resources": self.resources.to_dict() if self.resources else None,
        }


def judge_level(score: JudgeScore, rules: Thresholds, margin: float = 0.0) -> str:
    """The level the judge's probabilities reach on their own (``margin`` raises every threshold)."""
    if score.risk >= rules.concern + margin and score.crisis >= rules.crisis + margin:
        return "crisis"
    if score.risk >= rules.concern + margin:
        return "concern"
    return "check_in" if score.risk >= rules.check_in + margin else "none"


SHORT_WORDS = 20  # a turn this short is judged whole: its sentences cannot be diluted in it
LONG_WORDS = 40


def judged_parts(text: str) -> list[str]:
    """What the judge sees besides the whole turn, so a risky sentence is not diluted by a long one.

    Each sentence (4 words or more) of a turn of several sentences that is longer than
    ``SHORT_WORDS`` words; and for a long unpunctuated stretch (over ``LONG_WORDS`` words, as
    speech often comes out) its clauses and windows of clauses, minus those set aside as past,
    denied or someone else's story.
    """
    whole = text.strip()
    parts = sentences(whole) if len(whole.split()) > SHORT_WORDS else []
    units = [s for s in parts if len(s.split()) >= 4] if len(parts) > 1 else []
    for unit in [whole, *units]:
        if len(unit.split()) > LONG_WORDS:
            units += split_units(unit)
    return [u for u in dict.fromkeys(units) if u != whole]


def pattern_level(hit: PatternHit) -> str:
    """An explicit phrasing's level: urgent categories (plan, harm to or from others) are crisis."""
    return "crisis" if hit.severity == "urgent" else "concern"


class RiskChecker:
    """Gives each utterance a level: suicidal thoughts or plans, self-harm, harm to or from others."""

    def __init__(self, *, locale: str = "", judge: bool | Judge = True, rules: Thresholds | None = None) -> None:
        """Args:
            locale: which crisis resources to attach to a result above none.
            judge: False for the pattern layer only; True for the shared trained judge; or another Judge.
            rules: the judge's thresholds; default: the packaged ``data/risk_levels.toml``.
        """
        self.locale = locale
        self.rules = rules or thresholds()
        if judge is True:
            judge = shared_judge()
        self.judge: Judge | None = judge or None

    def warm(self) -> bool:
        """Load the judge now (e.g. in a startup thread); whether it is available."""
        return self.judge.warm() if self.judge is not None else False

    def warm_check(self) -> None:
        """Check one ordinary sentence, so the person's first turn does not pay for the first check.

        The first pass after loading is slower than the rest; ``talk`` runs this on a thread
        while the greeting plays, not before "Ready".
        """
        self.check("I had a long day at work and I keep thinking about it.")

    def check(self, text: str) -> RiskResult:
        """Check one utterance: the judge over the whole turn and its clauses, with the patterns beside it.

        A trusted pattern hit (not only in past, denied or story clauses) gives its level, unless
        the judge is available and finds the turn plainly safe: then the person is asked
        directly. A pattern hit only in set-aside clauses is left to the judge; with no judge
        every hit stands.
        """
        found = check_patterns(text)
        scores = self.scores(text)
        if not scores:
            if found is None:
                return RiskResult()
            return self._result(pattern_level(found), (f"pattern: {found.category}",), found.category, found.matched)
        rules = self.rules
        whole, clauses = scores[0], scores[1:]
        level = judge_level(whole, rules)
        for clause in clauses:
            level = higher(level, judge_level(clause, rules, rules.clause_margin))
        best = max(scores, key=lambda s: s.risk)
        reasons = [f"judge: risk {best.risk:.2f}, crisis {best.crisis:.2f}"] if level != "none" else []
        category, matched = ("judge", best.text) if level != "none" else ("", "")
        if found is not None and not found.resolved:
            from_pattern = pattern_level(found) if best.risk >= rules.pattern_floor else "check_in"
            if LEVELS.index(from_pattern) >= LEVELS.index(level):
                category, matched = found.category, found.matched
            level = higher(level, from_pattern)
            reasons.insert(0, f"pattern: {found.category}")
        return self._result(level, tuple(reasons), category, matched, best.risk)

    def scores(self, text: str) -> list[JudgeScore]:
        """The judge's scores for the whole text, then for its parts (see :func:`judged_parts`).

        Empty when the judge is off or its model is missing.
        """
        if self.judge is None:
            return []
        return self.judge.scores([text.strip(), *judged_parts(text)])

    def _result(self, level: str, reasons: tuple[str, ...], category: str, matched: str,
                score: float = 0.0) -> RiskResult:
        if level == "none":
            return RiskResult(score=score)
        return RiskResult(level, reasons, category, matched, score, crisis_resources(self.locale))
