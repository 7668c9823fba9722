"""The person's own safety plan (Stanley-Brown sections, ``data/safety_plan.toml``): plain data.

Wysa reports that about half of the people in a crisis used their own safety plan and 2.4 %
called a helpline, so the plan is shown first at the concern and crisis levels. The store
keeps it (sealed like every other file when encryption is on); this module only shapes it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from voicereflect.safety.resources import CrisisResources
from voicereflect.safety.text import packaged_toml


@dataclass(frozen=True)
class PlanSection:
    """One section of the plan: its id, its title, and the question that fills it."""

    id: str
    title: str
    prompt: str


@lru_cache(maxsize=1)
def plan_sections() -> tuple[PlanSection, ...]:
    """The sections, in the order they are used."""
    data = packaged_toml("safety_plan.toml")
    return tuple(PlanSection(**section) for section in data["sections"])


@dataclass(frozen=True)
class SafetyPlan:
    """What the person wrote in each section (section id -> entries), and when it last changed."""

    entries: dict[str, tuple[str, ...]] = field(default_factory=dict)
    updated_at: str = ""

    @property
    def empty(self) -> bool:
        """Whether nothing has been written yet."""
        return not any(self.entries.values())

    def with_section(self, section_id: str, entries: list[str], updated_at: str) -> SafetyPlan:
        """A copy with one section's entries replaced (blank entries dropped)."""
        if section_id not in {s.id for s in plan_sections()}:
            raise ValueError(f"unknown safety plan section {section_id!r}")
        kept = tuple(e.strip() for e in entries if e.strip())
        return SafetyPlan({**self.entries, section_id: kept}, updated_at)

    def card(self, resources: CrisisResources | None = None) -> str:
        """The plan as printable lines, section by section; crisis lines under professionals."""
        rows = []
        for section in plan_sections():
            entries = list(self.entries.get(section.id, ()))
            if section.id == "professionals" and resources is not None:
                entries += [f"{line.name}: {line.contact}" for line in resources.lines]
            if entries:
                rows.append(f"  {section.title}:")
                rows += [f"    - {entry}" for entry in entries]
        return "\n".join(rows)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data."""
        return {"entries": {k: list(v) for k, v in self.entries.items() if v}, "updated_at": self.updated_at}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> SafetyPlan:
        """The plan from :meth:`to_dict`'s form; unknown sections are kept, not lost."""
        if not data:
            return cls()
        entries = {str(k): tuple(str(e) for e in v) for k, v in dict(data.get("entries", {})).items()}
        return cls(entries, str(data.get("updated_at", "")))
