"""What the person can say to steer a session: "skip", "go back", "repeat that", "slower", "end session".

Only short utterances count as commands, so "I wanted to skip the party" is a normal turn.
"""

from __future__ import annotations

import re

MAX_COMMAND_WORDS = 6
MAX_END_WORDS = 10  # "okay, I think that's all for today, thank you"

_COMMANDS = [
    ("end", r"^(please )?(end|stop|finish|close)( the| this| our)? session( please| now)?$|that'?s all for (today|now)|"
            r"^(i think )?i'?m done for (today|now)|^goodbye$"),
    ("skip", r"^(can we |let'?s |please )?(skip|pass|next)( (this|that|it|question|one|the question|this question))?( please)?$|"
             r"^next question( please)?$"),
    ("back", r"^(can we |let'?s |please )?go back( please)?$|^previous question( please)?$|^back$"),
    ("repeat", r"^(can you |could you |please )?(repeat( that| the question| it)?|say (that|it) again)( please)?$|"
               r"^sorry,? what\??$|^what was the question\??$"),
    ("slower", r"^(can you |could you |please )?(speak |talk |go )?(more )?slow(er|ly| down)( please)?$"),
]
_COMPILED = [(name, re.compile(pattern, re.IGNORECASE)) for name, pattern in _COMMANDS]

CRISIS_CHOICES = [
    ("end", re.compile(r"\b(end|stop|finish|quit|done)\b", re.IGNORECASE)),
    ("pause", re.compile(r"\b(pause|break|later|not now)\b", re.IGNORECASE)),
    ("continue", re.compile(r"\b(continue|carry on|keep going|go on|yes|okay|ok)\b", re.IGNORECASE)),
]


def parse_command(text: str) -> str | None:
    """The command a short utterance asks for ("end", "skip", "back", "repeat", "slower"), or None."""
    cleaned = re.sub(r"[^\w' ]+", " ", text).strip().lower()
    cleaned = re.sub(r"^(um+|uh+|okay|ok|so|and|right)\s+", "", cleaned)
    cleaned = " ".join(cleaned.split())
    words = len(cleaned.split())
    if not cleaned or words > MAX_END_WORDS:
        return None
    for name, pattern in _COMPILED:
        if (words <= MAX_COMMAND_WORDS or name == "end") and pattern.search(cleaned):
            return name
    return None


_NEGATION = re.compile(r"\b(not|no|don'?t|do not|never|won'?t|isn'?t|nah)\b", re.IGNORECASE)


def parse_crisis_choice(text: str) -> str | None:
    """After crisis resources: "end", "pause" or "continue"; None when unclear.

    Any negation ("I don't want to stop", "no, not done") makes the answer unclear rather
    than guessing: the turn is then handled as an ordinary one, carefully.
    """
    if len(text.split()) > 12 or _NEGATION.search(text):
        return None
    found = {name for name, pattern in CRISIS_CHOICES if pattern.search(text)}
    return found.pop() if len(found) == 1 else None
