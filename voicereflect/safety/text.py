"""Plain helpers shared by the layers of the risk check: the data files, clauses, the normalised form, windows."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any


@lru_cache(maxsize=None)
def packaged_toml(name: str) -> dict[str, Any]:
    """A data file of ``voicereflect/data/`` (e.g. "risk_levels.toml"), parsed once per process."""
    return tomllib.loads((resources.files("voicereflect") / "data" / name).read_text(encoding="utf-8"))


@dataclass(frozen=True)
class Clause:
    """One clause of a turn: its original text, its normalised form (idioms cut out), and
    why it is set aside: "past" (its sentence is about the past), "denied", "story"
    (someone else's, in a show, book or the news), or ""."""

    text: str
    cleaned: str
    sentence: int
    excluded: str = ""


def windows(clauses: Sequence[Clause], *, width: int = 3, min_words: int = 3) -> list[str]:
    """The units to embed: runs of 1 to ``width`` neighbouring clauses, never across a set-aside one.

    A risky clause inside a long rambling turn is diluted in the whole-text embedding, so
    every clause (``min_words`` or more) and every window of neighbours is checked alone.
    A window whose clauses contained idioms is embedded in its cleaned form.
    """
    runs: list[list[Clause]] = [[]]
    for clause in clauses:
        if clause.excluded:
            runs.append([])
        else:
            runs[-1].append(clause)
    units: dict[str, None] = {}  # ordered and de-duplicated
    for run in runs:
        for size in range(1, width + 1):
            for start in range(len(run) - size + 1):
                window = run[start:start + size]
                if sum(len(c.cleaned.split()) for c in window) >= min_words:
                    units.setdefault(_embedding_text(window), None)
    return list(units)


def _embedding_text(window: Sequence[Clause]) -> str:
    idiom_free = all(normalise(c.text) == c.cleaned for c in window)
    return ", ".join(c.text for c in window) if idiom_free else " ".join(c.cleaned for c in window)


def normalise(text: str) -> str:
    """Lower-case, apostrophes dropped ("don't" -> "dont"), single spaces: the patterns' form."""
    text = re.sub(r"['\u2018\u2019]", "", text.lower())
    text = re.sub(r"[^a-z0-9 ]+", " ", text)
    return " ".join(text.split())
