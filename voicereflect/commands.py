"""What the person can say to steer a session: "skip", "go back", "repeat that", "slower", "end session",
and "flag that" (mark what they just said to bring to therapy).

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
    ("flag", r"^(please |can you |could you )?(flag|mark|bookmark|star) (that|this|it)( one)?( for (therapy|my therapist))?( please)?$|"
             r"^(i want to |i'?d like to |let'?s )?(bring|take|save|keep) (that|this) (to|for) (therapy|my therapist|my session)$|"
             r"^that'?s (one )?for (therapy|my therapist)$"),
]
_COMPILED = [(name, re.compile(pattern, re.IGNORECASE)) for name, pattern in _COMMANDS]

CRISIS_CHOICES = [
    ("end", re.compile(r"\b(end|stop|finish|quit|done)\b", re.IGNORECASE)),
    ("pause", re.compile(r"\b(pause|break|later|not now)\b", re.IGNORECASE)),
    ("continue", re.compile(r"\b(continue|carry on|keep going|go on|yes|okay|ok)\b", re.IGNORECASE)),
]


def parse_command(text: str) -> str | None:
    """The command a short utterance asks for ("end", "skip", "back", "repeat", "slower", "flag"), or None."""
    cleaned = re.sub(r"[^\w' ]+", " ", text).strip().lower()
    cleaned = re.sub(r"^(um+|uh+|okay|ok|so|and|right)\s+", "", cleaned)
    cleaned = " ".join(cleaned.split())
    words = len(cleaned.split())
    if not cleaned or words > MAX_END_WORDS:
        return None
    for name, pattern in _COMPILED:
        if (words <= MAX_COMMAND_WORDS or name in ("end", "flag")) and pattern.search(cleaned):
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


_NUMBER_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
                 "nine": 9, "ten": 10}


def parse_rating(text: str) -> int | None:
    """A 1-10 rating from a short answer ("7", "about a six", "seven out of ten"); None if there is none.

    Anything unclear counts as skipping: the question is asked once and never pressed.
    """
    words = re.sub(r"[^\w ]+", " ", text.lower()).split()
    if len(words) > 8:
        return None
    found = [int(w) if w.isdigit() else _NUMBER_WORDS[w] for w in words if w.isdigit() or w in _NUMBER_WORDS]
    if "out" in words and "of" in words and found[-1:] == [10]:
        found = found[:-1]  # "seven out of ten"
    values = {n for n in found if 1 <= n <= 10}
    return values.pop() if len(values) == 1 and len(found) == 1 else None
