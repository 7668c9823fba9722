"""Guides as data (TOML files) and the plain state machine that walks through their stages."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from voicereflect.errors import ConfigError


@dataclass(frozen=True)
class Stage:
    """One step of a guide.

    Attributes:
        id: short name.
        intent: what the next question should explore (given to the LLM).
        questions: scripted questions for this stage (the fallback).
        turns: replies this stage gets before the guide moves on.
        mark: event type recorded on the person's turns in this stage ("" for none).
    """

    id: str
    intent: str
    questions: tuple[str, ...]
    turns: int = 1
    mark: str = ""


@dataclass(frozen=True)
class Guide:
    """A reflection guide loaded from a TOML file."""

    id: str
    title: str
    description: str
    opening: str
    closing: str
    stages: tuple[Stage, ...]


def parse_guide(data: dict, source: str) -> Guide:
    """Build a Guide from parsed TOML, naming the file and key on any error."""
    try:
        stages = tuple(
            Stage(id=str(s["id"]), intent=str(s["intent"]), questions=tuple(str(q) for q in s["questions"]),
                  turns=int(s.get("turns", 1)), mark=str(s.get("mark", "")))
            for s in data["stages"]
        )
        guide = Guide(
            id=str(data["id"]), title=str(data["title"]), description=str(data["description"]),
            opening=str(data["opening"]), closing=str(data.get("closing", "Thank you for taking this time.")),
            stages=stages,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"Guide {source} is missing or has a wrong key: {exc}.") from exc
    if any(not isinstance(s.get("questions"), list) for s in data["stages"]):
        raise ConfigError(f"Guide {source}: each stage's questions must be a list of strings.")
    if not stages or any(not s.questions or s.turns < 1 for s in stages):
        raise ConfigError(f"Guide {source} needs at least one stage, each with questions and turns >= 1.")
    return guide


def builtin_guide_files() -> list[Path]:
    """The TOML files of the guides shipped with voicereflect."""
    folder = resources.files("voicereflect") / "guides"
    return sorted(Path(str(p)) for p in folder.iterdir() if p.name.endswith(".toml"))


def load_guides(user_folder: Path | None = None) -> dict[str, Guide]:
    """All guides by id: built-in ones, then the user's (which may override by id)."""
    files = builtin_guide_files()
    if user_folder and user_folder.is_dir():
        files += sorted(user_folder.glob("*.toml"))
    guides: dict[str, Guide] = {}
    for path in files:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"Guide {path} cannot be read: {exc}") from exc
        guide = parse_guide(data, str(path))
        guides[guide.id] = guide
    return guides


def get_guide(guide_id: str, user_folder: Path | None = None) -> Guide:
    """One guide by id; ConfigError listing the known ids if there is none."""
    guides = load_guides(user_folder)
    if guide_id not in guides:
        raise ConfigError(f"No guide '{guide_id}'. Known guides: {', '.join(sorted(guides))}.")
    return guides[guide_id]


class GuideProgress:
    """Where a session is in its guide: the stage, and how many replies it has had."""

    def __init__(self, guide: Guide) -> None:
        """Start at the first stage."""
        self.guide = guide
        self.stage_index = 0
        self.replies_in_stage = 0
        self.asked_index = 0
        """The stage of the question the person last heard (the opening belongs to stage 0)."""

    @property
    def stage(self) -> Stage:
        """The current stage."""
        return self.guide.stages[self.stage_index]

    def scripted_question(self) -> str:
        """The current stage's next scripted question (they rotate within a stage)."""
        questions = self.stage.questions
        return questions[self.replies_in_stage % len(questions)]

    def replied(self) -> None:
        """Count a reply; move on once the stage has had its turns (the last stage repeats)."""
        self.asked_index = self.stage_index
        self.replies_in_stage += 1
        if self.replies_in_stage >= self.stage.turns and self.stage_index < len(self.guide.stages) - 1:
            self.stage_index += 1
            self.replies_in_stage = 0

    def skip(self) -> None:
        """Move past the stage of the question last heard (stays on the last stage)."""
        self.stage_index = min(self.asked_index + 1, len(self.guide.stages) - 1)
        self.replies_in_stage = 0

    def back(self) -> None:
        """Return to the stage before the question last heard (stays on the first one)."""
        self.stage_index = max(self.asked_index - 1, 0)
        self.replies_in_stage = 0
