"""The whole session, not one sentence: each turn's level, raised by what the last turns say together.

Risk can show only across turns (the dog rehomed, then "Sunday, while everyone is at
church", then "the letters are written"): the judge scores the last ``window`` turns as one
text, and a slowly decaying session level adds up worry that builds. One heavy word in an
otherwise ordinary session moves neither far. The numbers live in ``data/risk_levels.toml``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache

from voicereflect.safety.checker import LEVELS, RiskChecker, RiskResult, higher, judge_level
from voicereflect.safety.resources import crisis_resources
from voicereflect.safety.text import packaged_toml


@dataclass(frozen=True)
class SessionRules:
    """How the session context works (``[session]`` in ``data/risk_levels.toml``)."""

    window: int  # turns scored together, this one included
    decay: float  # the share of the session level carried to the next turn
    window_margin: float  # the window must pass each threshold by this much
    build: float  # a session level at or above this asks directly (check_in)


@lru_cache(maxsize=1)
def session_rules() -> SessionRules:
    """The packaged session rules, read once."""
    data = packaged_toml("risk_levels.toml")
    section = data["session"]
    return SessionRules(int(section["window"]), float(section["decay"]), float(section["window_margin"]),
                        float(section["build"]))


class SessionRisk:
    """Checks each turn of one session in order, with the turns before it in view."""

    def __init__(self, checker: RiskChecker, *, rules: SessionRules | None = None) -> None:
        """Args: checker: the one-utterance check. rules: default: the packaged ``[session]`` rules."""
        self.checker = checker
        self.rules = rules or session_rules()
        self.turns: list[str] = []
        self.levels: list[str] = []  # each remembered turn's own level
        self.level_score = 0.0
        """The decaying session level: each unanswered turn adds its risk score to what is left of the last."""

    def check_reply(self, text: str) -> RiskResult:
        """Check a reply the model wrote, on its own: it is not the person's turn, so it is not remembered."""
        return self.checker.check(text)

    def escalate(self, result: RiskResult, level: str, reason: str) -> RiskResult:
        """``result`` raised to at least ``level``, with ``reason`` added and the resources attached."""
        return self._raised(result, higher(result.level, level), (*result.reasons, reason))

    def check(self, text: str) -> RiskResult:
        """The level of this turn of the session; the turn is remembered for the ones after it."""
        result = self.checker.check(text)
        self.turns = [*self.turns, text][-self.rules.window:]
        self.levels = [*self.levels, result.level][-self.rules.window:]
        level, reasons = result.level, list(result.reasons)
        if len(self.turns) > 1 and self.checker.judge is not None:
            scores = self.checker.judge.scores([" ".join(self.turns)])
            across = judge_level(scores[0], self.checker.rules, self.rules.window_margin) if scores else "none"
            # Only what the turns say together and none said alone: a turn already answered
            # at its own level is not answered again for each turn that follows it.
            if LEVELS.index(across) > max(LEVELS.index(seen) for seen in self.levels):
                reasons.append(f"last {len(self.turns)} turns: risk {scores[0].risk:.2f}, "
                               f"crisis {scores[0].crisis:.2f}")
                level = across
        # Worry that builds is what went unanswered: a turn answered at a level of its own starts it again.
        self.level_score = 0.0 if level != "none" else self.level_score * self.rules.decay + result.score
        if level == "none" and self.level_score >= self.rules.build:
            level = "check_in"
            reasons.append(f"worry building across the session ({self.level_score:.2f})")
            self.level_score = 0.0
        return result if level == result.level else self._raised(result, level, tuple(reasons))

    def _raised(self, result: RiskResult, level: str, reasons: tuple[str, ...]) -> RiskResult:
        """``result`` at ``level`` for ``reasons``, with this session's crisis resources attached."""
        return replace(result, level=level, reasons=reasons, category=result.category or "session",
                       resources=crisis_resources(self.checker.locale))
