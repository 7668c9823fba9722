"""Guided reflection: guides (TOML data), the system prompt (a file), reply checks and the Reflector.

The Reflector asks the LLM for a short reflection plus one question, checks the reply in
code, and falls back to the guide's scripted question whenever the model is down, slow,
or says something a reflection aid must not say.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

from voicereflect.errors import ConfigError, LLMError
from voicereflect.interfaces import ChatModel
from voicereflect.types import Message, Turn

HISTORY_TURNS = 8
"""How many recent turns the model sees (keeps prompt processing short on a small CPU)."""


@dataclass(frozen=True)
class Stage:
    """One step of a guide: what to explore, and scripted questions for it."""

    id: str
    intent: str
    questions: tuple[str, ...]


@dataclass(frozen=True)
class Guide:
    """A reflection guide loaded from a TOML file."""

    id: str
    title: str
    description: str
    opening: str
    closing: str
    stages: tuple[Stage, ...]

    def stage_for(self, reply_number: int) -> Stage:
        """The stage the ``reply_number``-th reply (0-based) belongs to; the last stage repeats."""
        index = min(reply_number // 2, len(self.stages) - 1)
        return self.stages[index]

    def scripted_question(self, reply_number: int) -> str:
        """A scripted question for the ``reply_number``-th reply, rotating within its stage."""
        stage = self.stage_for(reply_number)
        return stage.questions[reply_number % len(stage.questions)]


def parse_guide(data: dict, source: str) -> Guide:
    """Build a Guide from parsed TOML, naming the file and key on any error."""
    try:
        stages = tuple(
            Stage(id=str(s["id"]), intent=str(s["intent"]), questions=tuple(str(q) for q in s["questions"]))
            for s in data["stages"]
        )
        guide = Guide(
            id=str(data["id"]),
            title=str(data["title"]),
            description=str(data["description"]),
            opening=str(data["opening"]),
            closing=str(data.get("closing", "Thank you for taking this time.")),
            stages=stages,
        )
    except (KeyError, TypeError) as exc:
        raise ConfigError(f"Guide {source} is missing or has a wrong key: {exc}.") from exc
    if not stages or any(not s.questions for s in stages):
        raise ConfigError(f"Guide {source} needs at least one stage, each with at least one question.")
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


def system_prompt(guide: Guide) -> str:
    """The system prompt (voicereflect/prompts/system.txt) filled in for ``guide``."""
    template = (resources.files("voicereflect") / "prompts" / "system.txt").read_text(encoding="utf-8")
    return template.format(guide_title=guide.title, guide_description=guide.description)


@lru_cache(maxsize=1)
def _reply_rules() -> tuple[int, tuple[re.Pattern[str], ...]]:
    text = (resources.files("voicereflect") / "data" / "reply_rules.toml").read_text(encoding="utf-8")
    rules = tomllib.loads(text)
    return int(rules["max_words"]), tuple(re.compile(p, re.IGNORECASE) for p in rules["forbidden"])


def reply_problem(text: str) -> str | None:
    """Why a reply must not be used, or None if it passes every check.

    A good reply has at most ``max_words`` words, exactly one question mark, ends with
    that question, and contains nothing from the forbidden list (diagnosis, directives
    about care or medication, role claims, phone numbers or links, exclamation marks).
    """
    max_words, forbidden = _reply_rules()
    words = text.split()
    if not words:
        return "empty"
    if len(words) > max_words:
        return f"too long ({len(words)} words)"
    if text.count("?") != 1 or not text.rstrip().endswith("?"):
        return "not exactly one question at the end"
    for pattern in forbidden:
        if pattern.search(text):
            return f"forbidden: {pattern.pattern}"
    if _repeats_itself(words):
        return "repeats itself"
    if re.search(r"[^\x00-\u024f\u2018-\u201f\u2026\u2013\u2014]", text):
        return "unexpected characters"
    return None


def _repeats_itself(words: list[str], size: int = 4) -> bool:
    """True when any run of ``size`` words occurs twice (a small model looping)."""
    normalised = [re.sub(r"\W", "", w.lower()) for w in words]
    grams = [tuple(normalised[i : i + size]) for i in range(len(normalised) - size + 1)]
    return len(grams) != len(set(grams))


def clean_reply(raw: str) -> str:
    """Normalise whitespace and strip quotes or role prefixes the model may add."""
    text = " ".join(raw.split())
    text = re.sub(r"^(assistant|voicereflect)\s*:\s*", "", text, flags=re.IGNORECASE)
    return text.strip().strip('"').strip()


def salvage_reply(text: str) -> str | None:
    """The reply cut after its first question, if that part passes the checks."""
    match = re.match(r"^(.*?\?)", text)
    if not match:
        return None
    candidate = match.group(1).strip()
    return candidate if reply_problem(candidate) is None else None


@dataclass(frozen=True)
class Reply:
    """What the assistant will say, and where it came from ("llm" or "scripted")."""

    text: str
    source: str
    note: str = ""
    error: str = ""


class Reflector:
    """Chooses the assistant's next words: the LLM's reply if it passes the checks, else scripted."""

    def __init__(self, *, guide: Guide, chat: ChatModel | None) -> None:
        """Args: guide: the guide being followed. chat: the LLM, or None for scripted questions only."""
        self.guide = guide
        self.chat = chat
        self.llm_failed = False
        """True once the LLM has failed in this session."""
        self._system = system_prompt(guide)

    def build_messages(self, history: Sequence[Turn], reply_number: int) -> list[Message]:
        """System prompt, the recent turns, and the current stage's intent (pure)."""
        messages = [Message("system", self._system)]
        for turn in list(history)[-HISTORY_TURNS:]:
            messages.append(Message("user" if turn.role == "user" else "assistant", turn.text))
        stage = self.guide.stage_for(reply_number)
        messages.append(Message("system", f"Next, in one short reply ending with one question: {stage.intent}"))
        return messages

    def reply(self, history: Sequence[Turn], reply_number: int) -> Reply:
        """The next assistant reply to ``history`` (which ends with the person's turn)."""
        scripted = self.guide.scripted_question(reply_number)
        if self.chat is None:
            return Reply(scripted, "scripted")
        try:
            raw = self._generate(self.build_messages(history, reply_number))
        except LLMError as exc:
            note = "" if self.llm_failed else "llm-unavailable"
            self.llm_failed = True  # the person is told once per session, not every turn
            return Reply(scripted, "scripted", note=note, error=str(exc))
        text = clean_reply(raw)
        if reply_problem(text) is None:
            return Reply(text, "llm")
        salvaged = salvage_reply(text)
        if salvaged:
            return Reply(salvaged, "llm", note="trimmed")
        return Reply(scripted, "scripted", note=f"llm reply rejected: {reply_problem(text)}")

    def _generate(self, messages: list[Message]) -> str:
        """Stream the reply, stopping at its first question or once it is already too long.

        Only the text up to the first question mark is ever used, so generating past it
        (small models ramble for a hundred tokens) only adds seconds of waiting.
        """
        max_words, _ = _reply_rules()
        pieces: list[str] = []
        stream = self.chat.stream(messages)
        try:
            for piece in stream:
                pieces.append(piece)
                text = "".join(pieces)
                if "?" in text or len(text.split()) > max_words:
                    break
        finally:
            close = getattr(stream, "close", None)
            if close:
                close()  # closing the HTTP stream tells the server to stop generating
        text = "".join(pieces)
        return text[: text.index("?") + 1] if "?" in text else text
