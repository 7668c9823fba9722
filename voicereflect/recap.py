"""The short summary saved with each session, for looking back and for the prep brief.

The language model may write it, but only a recap that passes checks in code is kept:
at most ``MAX_WORDS`` words, no question, nothing a reflection aid must not say (the
reply rules), and grounded: most of its content words were said by the person. Small
models often invent; then (and without a model, or after a risk event) the recap is
built from the person's own words instead: the first sentences of what they said and
anything they flagged.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from importlib import resources

from voicereflect.errors import LLMError
from voicereflect.interfaces import ChatModel
from voicereflect.reflection import as_person_words
from voicereflect.replies import clean_reply, content_words, reply_problem
from voicereflect.types import NOT_SAID, Message, SessionNotes, Turn

MAX_WORDS = 50
GROUNDED = 0.75
"""The share of a model recap's content words that must come from the person's words."""
QUOTES = 3


def first_sentence(text: str, max_words: int = 16) -> str:
    """The first sentence of ``text``, cut to ``max_words`` words with an ellipsis."""
    sentence = re.split(r"(?<=[.!?])\s+", text.strip(), maxsplit=1)[0]
    words = sentence.split()
    return " ".join(words[:max_words]) + (" ..." if len(words) > max_words else "")


def recap_from_words(turns: Sequence[Turn], notes: SessionNotes) -> str:
    """A recap in the person's own words: quoted first sentences, flagged turns first ("\u201c...\u201d / \u201c...\u201d")."""
    said = [(i, t) for i, t in enumerate(turns) if t.role == "user" and _is_content(t)]
    if not said:
        return ""
    chosen = [t for i, t in said if i in notes.flagged] + [t for i, t in said if i not in notes.flagged]
    quotes = list(dict.fromkeys(first_sentence(t.text) for t in chosen))[:QUOTES]
    return " / ".join(f"\u201c{q}\u201d" for q in quotes)


def recap_with_model(chat: ChatModel, turns: Sequence[Turn]) -> str | None:
    """A model-written recap that passes every check, or None."""
    said = " ".join(t.text for t in turns if t.role == "user" and _is_content(t))
    if not said.strip():
        return None
    prompt = (resources.files("voicereflect") / "prompts" / "recap.txt").read_text(encoding="utf-8")
    try:
        text = clean_reply("".join(chat.stream([Message("system", prompt), Message("user", as_person_words(said))])))
    except LLMError:
        return None
    return text if recap_problem(text, said) is None else None


def recap_problem(text: str, said: str) -> str | None:
    """Why a model recap must not be kept, or None."""
    words = text.split()
    if not words or len(words) > MAX_WORDS:
        return f"length ({len(words)} words)"
    if "?" in text:
        return "asks a question"
    problem = reply_problem(text.rstrip(".") + "?")  # the reply rules, for a text with no question
    if problem and problem.startswith("forbidden"):
        return problem
    own = content_words(text) - {"talked", "talk", "about", "said", "mentioned", "session", "today"}
    if own and len(own & content_words(said)) / len(own) < GROUNDED:
        return "not grounded in the person's words"
    return None


def write_recap(turns: Sequence[Turn], notes: SessionNotes, chat: ChatModel | None) -> tuple[str, str]:
    """The recap and its source: ("...", "llm") or ("...", "words"); ("", "") if nothing was said."""
    if chat is not None:
        text = recap_with_model(chat, turns)
        if text:
            return text, "llm"
    text = recap_from_words(turns, notes)
    return (text, "words") if text else ("", "")


def _is_content(turn: Turn) -> bool:
    """The person's reflections: not a command, a rating, a crisis choice, nor a turn that met the risk check."""
    return not any(e.get("type") in (*NOT_SAID, "safety") for e in turn.events)
