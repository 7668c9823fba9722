"""Crisis resources by locale (``data/crisis_resources.toml``): verified numbers with their source and date."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from voicereflect.safety.text import packaged_toml


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


def _resource_table() -> dict[str, Any]:
    return packaged_toml("crisis_resources.toml")


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

