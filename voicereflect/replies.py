"""Reply checks and clean-language echoes: plain functions over text, rules in a data file.

Every LLM reply passes :func:`reply_problem` before it is spoken. When it fails, the guide's
scripted question is used instead, prefixed by :func:`echo`: a short piece of the person's
own last sentence, with I/my turned into you/your, and nothing added.
"""

from __future__ import annotations

import re
import tomllib
from functools import lru_cache
from importlib import resources

STOPWORDS = frozenset(
    "a an and are as at be been but by can could did do does for from had has have how i i'm im in is it it's its "
    "just like me more most much my not of on or our so than that the their them then there these they this to "
    "too up us very was we were what when where which who why will with would you your yours about really "
    "feel felt think thing things some something what's that's there's here's how's where's who's you're "
    "they're we're let's".split()
)
_SWAPS = {
    "i": "you", "i'm": "you're", "im": "you're", "i've": "you've", "i'd": "you'd", "i'll": "you'll",
    "me": "you", "my": "your", "mine": "yours", "myself": "yourself",
    "we": "you", "us": "you", "our": "your", "ours": "yours", "ourselves": "yourselves",
}
_ECHO_BLOCKLIST = re.compile(
    r"\b(worthless|useless|stupid|pathetic|failure|hate (myself|me)|disgusting|ugly|idiot|never|always|nobody|"
    r"everyone|everybody|no one|kill\w*|di(e|es|ed|ing)|dead\w*|death|hurt\w*|suicid\w*|harm\w*|cut\w*|"
    r"overdos\w*|pills?|end (it|things))\b",
    re.IGNORECASE,
)


_UNEXPECTED_CHARACTER = re.compile(r"[^\x00-\u024f\u2018-\u201f\u2026\u2013\u2014]")
"""Anything but Latin letters, common punctuation and typographic quotes and dashes."""


@lru_cache(maxsize=1)
def _rules() -> tuple[int, int, tuple[re.Pattern[str], ...]]:
    text = (resources.files("voicereflect") / "data" / "reply_rules.toml").read_text(encoding="utf-8")
    rules = tomllib.loads(text)
    patterns = tuple(re.compile(p, re.IGNORECASE) for p in rules["forbidden"])
    return int(rules["max_words"]), int(rules["short_reply_words"]), patterns


def max_reply_words() -> int:
    """The longest reply allowed, in words."""
    return _rules()[0]


def content_words(text: str) -> set[str]:
    """Lower-case words of four letters or more that are not stop words."""
    return {w for w in re.findall(r"[a-z']+", text.lower()) if len(w) >= 4 and w not in STOPWORDS}


def reply_problem(text: str, person_said: str = "") -> str | None:
    """Why a reply must not be used, or None if it passes every check.

    A good reply has at most ``max_words`` words, exactly one question mark, ends with that
    question, does not talk about itself in the question, contains nothing forbidden
    (diagnosis, directives, medication, role claims, praise, contact details, "!"), does not
    loop, and (unless very short) picks up at least one of the person's own words.
    """
    max_words, short_words, _ = _rules()
    words = text.split()
    if not words:
        return "empty"
    if len(words) > max_words:
        return f"too long ({len(words)} words)"
    if text.count("?") != 1 or not text.rstrip().endswith("?"):
        return "not exactly one question at the end"
    problem = _wording_problem(text, words)
    if problem:
        return problem
    question = re.split(r"(?<=[.;:])\s+", text.strip())[-1]
    if re.search(r"\b(i|me|my|mine|myself)\b", question, re.IGNORECASE):
        return "the question is about the assistant"
    if _UNEXPECTED_CHARACTER.search(text):
        return "unexpected characters"
    if person_said and len(words) > short_words and not (content_words(text) & content_words(person_said)):
        return "does not pick up the person's words"
    return None


def partial_problem(text: str) -> str | None:
    """Why a reply still being generated can no longer pass :func:`reply_problem`, or None.

    Lets the caller stop a doomed reply at its first bad words instead of waiting for
    the model to finish it (a small model takes seconds to ramble to its question).
    """
    words = text.split()
    if len(words) > max_reply_words():
        return f"too long ({len(words)} words)"
    problem = _wording_problem(text, words)
    if problem:
        return problem
    return "unexpected characters" if _UNEXPECTED_CHARACTER.search(text) else None


def sentence_problem(sentence: str, person_said: str = "") -> str | None:
    """Why the first sentence of a reply must not be spoken before the rest exists, or None.

    A sentence spoken early is a statement (the reflection before the question): it must
    pass every check that applies to a part of a reply, and pick up the person's words.
    """
    words = sentence.split()
    if not words:
        return "empty"
    if len(words) > max_reply_words() // 2:
        return f"too long for a first sentence ({len(words)} words)"
    if "?" in sentence:
        return "a question (the reply ends there: spoken whole)"
    problem = _wording_problem(sentence, words)
    if problem:
        return problem
    if _UNEXPECTED_CHARACTER.search(sentence):
        return "unexpected characters"
    if not (content_words(sentence) & content_words(person_said)):
        return "does not pick up the person's words"
    return None


def _wording_problem(text: str, words: list[str]) -> str | None:
    """The checks every reply and every part of one must pass: nothing forbidden, no looping."""
    for pattern in _rules()[2]:
        if pattern.search(text):
            return f"forbidden: {pattern.pattern}"
    return "repeats itself" if _repeats_itself(words) else None


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


def salvage_reply(text: str, person_said: str = "") -> str | None:
    """The reply cut after its first question, if that part passes the checks."""
    match = re.match(r"^(.*?\?)", text)
    if not match:
        return None
    candidate = match.group(1).strip()
    return candidate if reply_problem(candidate, person_said) is None else None


def echo(person_said: str, max_words: int = 10) -> str:
    """A clean-language reflection of the person's last words: "You said you keep replaying it."

    Takes the last sentence (or its last clause, if the sentence is long), swaps first and
    second person, and returns "" when nothing short and safe to repeat is there (self-critical
    absolutes and risk words are never echoed).
    """
    sentences = [s for s in re.split(r"(?<=[.!?])\s+", person_said.strip()) if s.strip()]
    if not sentences:
        return ""
    fragment = sentences[-1].strip().rstrip(".!?")
    if len(fragment.split()) > max_words:
        clauses = re.split(r",\s*|\s+(?:and|but|because|so)\s+", fragment)
        fragment = clauses[-1].strip()
    words = fragment.split()
    if not 3 <= len(words) <= max_words or "?" in fragment or _ECHO_BLOCKLIST.search(fragment):
        return ""
    swapped = []
    for index, word in enumerate(words):
        after_i = index > 0 and words[index - 1].lower() == "i"
        if after_i and word.lower() in ("am", "was"):
            swapped.append("are" if word.lower() == "am" else "were")  # "I was" -> "you were", not "it were"
        else:
            swapped.append(_SWAPS.get(word.lower(), word))
    if words[0].lower() not in _SWAPS:
        return ""  # only echo what the person said about themselves ("I ...", "my ..."), verbatim otherwise risks distortion
    return "You said " + " ".join(swapped) + "."
