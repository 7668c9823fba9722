"""Finding words across every saved session (``voicereflect sessions search``)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from voicereflect.types import SessionRecord


@dataclass(frozen=True)
class Match:
    """One turn that holds every word of the query."""

    session_id: str
    started_at: str
    turn: int
    role: str
    text: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data: ``{session_id, started_at, turn, role, text}``."""
        return {"session_id": self.session_id, "started_at": self.started_at, "turn": self.turn,
                "role": self.role, "text": self.text}


def query_pattern(query: str) -> list[re.Pattern[str]]:
    """One case-insensitive whole-word pattern per word of ``query``: "sam" finds "Sam" and "Sam's", not "same"."""
    words = re.findall(r"[\w']+", query.lower())
    return [re.compile(rf"(?<![\w']){re.escape(w)}(?!\w)", re.IGNORECASE) for w in words]


def search_sessions(records: Iterable[SessionRecord], query: str) -> list[Match]:
    """Every turn, in session order, that contains all the words of ``query`` (none if it has no words)."""
    patterns = query_pattern(query)
    if not patterns:
        return []
    found = []
    for record in records:
        for index, turn in enumerate(record.turns):
            if all(p.search(turn.text) for p in patterns):
                found.append(Match(record.summary.id, turn.started_at, index, turn.role, turn.text))
    return found
