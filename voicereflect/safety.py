"""The risk check and crisis resources: plain code and data files, no model, no network.

It runs on every user turn before anything else happens, and on every LLM reply, and it
works with the LLM, TTS and storage all down.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from importlib import resources
from typing import Any


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

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data: ``{risk, category, severity, matched, resources}``."""
        return {
            "risk": self.risk,
            "category": self.category or None,
            "severity": self.severity or None,
            "matched": self.matched or None,
            "resources": self.resources.to_dict() if self.resources else None,
        }


@dataclass(frozen=True)
class _Rules:
    idioms: tuple[re.Pattern[str], ...]
    categories: tuple[tuple[str, str, tuple[re.Pattern[str], ...]], ...]


@lru_cache(maxsize=1)
def _rules() -> _Rules:
    text = (resources.files("voicereflect") / "data" / "risk_patterns.toml").read_text(encoding="utf-8")
    data = tomllib.loads(text)
    idioms = tuple(re.compile(p, re.IGNORECASE) for p in data["idioms"])
    categories = tuple(
        (name, spec["severity"], tuple(re.compile(p, re.IGNORECASE) for p in spec["patterns"]))
        for name, spec in data["categories"].items()
    )
    return _Rules(idioms=idioms, categories=categories)


def normalise(text: str) -> str:
    """Lower-case, apostrophes dropped ("don't" -> "dont"), single spaces: the patterns' form."""
    text = re.sub(r"['\u2018\u2019]", "", text.lower())
    text = re.sub(r"[^a-z0-9 ]+", " ", text)
    return " ".join(text.split())


class RiskChecker:
    """Flags suicidal thoughts or plans, self-harm, harm to others and danger from others."""

    def __init__(self, *, locale: str = "") -> None:
        """Args: locale: which crisis resources to attach to a positive result."""
        self.locale = locale

    def check(self, text: str) -> RiskResult:
        """Check one utterance; urgent categories win over concern ones."""
        rules = _rules()
        cleaned = normalise(text)
        for idiom in rules.idioms:
            cleaned = idiom.sub(" ", cleaned)
        hits = []
        for name, severity, patterns in rules.categories:
            for pattern in patterns:
                found = pattern.search(cleaned)
                if found:
                    hits.append((severity != "urgent", name, severity, found.group(0)))
                    break
        if not hits:
            return RiskResult(risk=False)
        _, name, severity, matched = sorted(hits)[0]
        return RiskResult(True, name, severity, matched, crisis_resources(self.locale))


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
