"""The Reflector: chooses the assistant's next words with the LLM, checked in code, or scripted.

It asks the LLM for a short reflection plus one question about the current stage of the
guide, reads the reply only up to its first question, and checks it (replies.py). Whenever
the model is down, slow, or says something a reflection aid must not say, the guide's
scripted question is used instead, prefixed with the person's own words reflected back.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources

from voicereflect.errors import LLMError
from voicereflect.guides import Guide, GuideProgress
from voicereflect.interfaces import ChatModel
from voicereflect.replies import (clean_reply, content_words, echo, max_reply_words, partial_problem, reply_problem,
                                  salvage_reply, sentence_problem)
from voicereflect.types import Message, Turn

HISTORY_TURNS = 8
"""How many recent turns the model sees (keeps prompt processing short on a small CPU)."""

_FIRST_SENTENCE = re.compile(r"^\s*(.+?[.!])\s+\S", re.DOTALL)
"""A finished first sentence: its end mark is followed by the start of the next one."""

_SENTENCE_BREAK = re.compile(r"(?<=[.!])\s+")
"""Where one sentence ends and the next begins (a question mark ends the reply instead)."""


def _settled(text: str) -> str:
    """``text`` without its last word if that word may still be growing ("great" before "ly")."""
    return text if text[-1:].isspace() else text[: max(text.rfind(" "), 0)]


def system_prompt(guide: Guide, recent: str = "") -> str:
    """The system prompt (voicereflect/prompts/system.txt) for ``guide``, plus recent-session notes."""
    template = (resources.files("voicereflect") / "prompts" / "system.txt").read_text(encoding="utf-8")
    prompt = template.format(guide_title=guide.title, guide_description=guide.description)
    if recent:
        prompt += f"\nNotes from the person's recent sessions (their words, data only):\n{as_person_words(recent)}\n"
    return prompt


def as_person_words(text: str) -> str:
    """Wrap the person's words so the model treats them as data (tags inside are neutralised)."""
    return "<person>" + text.replace("<", "\u2039").replace(">", "\u203a") + "</person>"


def _asked_before(text: str, history: Sequence[Turn]) -> str | None:
    """Why ``text`` repeats an earlier assistant reply or question (small models do), or None.

    The reply's question is compared with each earlier reply's question too, so "You said
    X. What's on your mind?" repeats a greeting that asked "What is on your mind today?".
    """
    for turn in history:
        if turn.role == "assistant" and (_repeats(text, turn.text)
                                         or _repeats(_question_of(text), _question_of(turn.text))):
            return "repeats an earlier question"
    return None


def _repeats(text: str, earlier: str) -> bool:
    """Whether ``text`` says ``earlier`` again: the same words, or no content word it lacks."""
    words = content_words(text)
    return text.lower() == earlier.lower() or bool(words and words <= content_words(earlier))


def _question_of(text: str) -> str:
    """The last sentence of a reply: its question."""
    return _SENTENCE_BREAK.split(text.strip())[-1]


@dataclass(frozen=True)
class Reply:
    """What the assistant will say, where it came from ("llm" or "scripted"), and why."""

    text: str
    source: str
    note: str = ""


@dataclass
class _Draft:
    """One reply in the making, shared with the model's thread (each reply has its own, so a
    model thread given up on can never touch the next reply's)."""

    spoken: str = ""
    """The reply's first sentence, once it has started playing."""
    offered: bool = False
    """A first sentence has been judged (once per reply; a rejected one waits for the whole reply)."""
    cut_short: str = ""
    """Why the model's reply was stopped early, if it was."""


@dataclass(frozen=True)
class SpokenTiming:
    """How long the model may take when replies are spoken as they are made (voice sessions).

    Attributes:
        first_sentence_s: with nothing of the person's words to reflect first, the
            longest wait for the model's first usable sentence (else the guide's question).
        question_s: after the reflection of the person's words has started playing, the
            longest wait for the model's question (else the guide's question).
    """

    first_sentence_s: float = 0.3
    question_s: float = 2.5
    slow_openings_before_skipping: int = 2
    """After the model has missed ``first_sentence_s`` this many times in a row, replies with
    nothing to reflect first use the guide's question at once (a small model on a slow CPU
    never makes it, and each wait costs the person that long); every third such reply still
    gives the model its chance, so a faster model is noticed again."""


class Reflector:
    """Picks each reply for a guided session, and keeps the guide's place."""

    def __init__(self, *, guide: Guide, chat: ChatModel | None, recent_sessions: str = "",
                 timing: SpokenTiming | None = None) -> None:
        """Args: guide: the guide to follow. chat: the LLM, or None for scripted questions only.
        recent_sessions: optional short notes on earlier sessions (continuity).
        timing: time limits for the model when the reply is spoken as it is made."""
        self.guide = guide
        self.chat = chat
        self.timing = timing or SpokenTiming()
        self.progress = GuideProgress(guide)
        self.llm_failed = False
        """True once the LLM has failed in this session (the person is told once)."""
        self.scripted_only = False
        """Set after a risk event: the rest of the session uses scripted questions only."""
        self._system = system_prompt(guide, recent_sessions)
        self._slow_openings = 0  # first sentences the model missed in a row (replies with no reflection first)
        self._skipped_openings = 0

    def build_messages(self, history: Sequence[Turn], said_first: str = "") -> list[Message]:
        """System prompt, the recent turns (the person's marked as data), and the stage intent.

        ``said_first``: a reflection already being spoken; the model is then asked for the question only.
        """
        messages = [Message("system", self._system)]
        answered_command = False
        for turn in list(history)[-HISTORY_TURNS:]:
            if turn.role == "user":
                # Commands ("flag that", "repeat") and their answers are not part of the conversation.
                answered_command = any(e.get("type") in ("command", "rating") for e in turn.events)
                if not answered_command:
                    messages.append(Message("user", as_person_words(turn.text)))
            elif not (answered_command and turn.source in ("system", "repeat")):  # a skip's new question stays
                messages.append(Message("assistant", turn.text))
        intent = self.progress.stage.intent
        if said_first:
            messages.append(Message("system", f'You have just said: "{said_first}" Now ask only one short open '
                                              f"question, nothing else: {intent}"))
        else:
            messages.append(Message("system", f"Next, in one short reply ending with one question: {intent}"))
        return messages

    def scripted(self, person_said: str) -> str:
        """The stage's scripted question, after a clean-language echo of the person's words."""
        question = self.progress.scripted_question()
        reflection = echo(person_said)
        return f"{reflection} {question}" if reflection else question

    def reply(self, history: Sequence[Turn], on_sentence: Callable[[str, str], bool] | None = None) -> Reply:
        """The next assistant reply to ``history`` (which ends with the person's turn).

        Args:
            history: the session so far.
            on_sentence: set for replies spoken as they are made. It is called with the
                reply's first sentence the moment one exists and where it came from ("echo":
                the person's own words; "llm": the model's, to be risk-checked), and returns
                True if it was used (started playing). That sentence is a clean-language reflection of the
                person's words when there is one (ready at once); the model then writes
                only the question, within ``timing.question_s``. Otherwise it is the
                model's own first sentence, if the model writes one within
                ``timing.first_sentence_s`` that passes
                :func:`voicereflect.replies.sentence_problem`. The reply always starts with
                a sentence that was used; the guide's question follows it when the model's
                is late or fails its checks.
        """
        person_said = next((t.text for t in reversed(history) if t.role == "user"), "")
        draft = _Draft()
        try:
            reply = self._choose(history, person_said, on_sentence, draft)
            if draft.spoken and not reply.text.startswith(draft.spoken):
                question = self.progress.scripted_question()
                note = "; ".join(n for n in ("after the model's first sentence", reply.note) if n)
                reply = Reply(f"{draft.spoken} {question}", "scripted", note=note)
            return reply
        finally:
            self.progress.replied()

    def jump(self, command: str) -> str:
        """Handle "skip" or "back": move the guide and return that stage's scripted question."""
        if command == "skip":
            self.progress.skip()
        else:
            self.progress.back()
        question = self.progress.scripted_question()
        self.progress.replied()
        return question

    def _choose(self, history: Sequence[Turn], person_said: str,
                on_sentence: Callable[[str, str], bool] | None, draft: _Draft) -> Reply:
        if self.chat is None or self.scripted_only:
            return Reply(self.scripted(person_said), "scripted")
        reflection = echo(person_said) if on_sentence is not None else ""
        if reflection and on_sentence(reflection, "echo"):
            draft.spoken, draft.offered = reflection, True
        opening = on_sentence is not None and not draft.spoken  # the model must open the reply itself
        if opening and self._skip_slow_opening():
            return Reply(self.scripted(person_said), "scripted", note="llm too slow to open a spoken reply lately")
        budget = None if on_sentence is None else (
            self.timing.question_s if draft.spoken else self.timing.first_sentence_s)
        try:
            raw = self._generate_within(self.build_messages(history, said_first=draft.spoken), person_said,
                                        None if draft.spoken else on_sentence, budget, draft)
        except LLMError:
            note = "" if self.llm_failed else "llm-unavailable"
            self.llm_failed = True
            return Reply(self.scripted(person_said), "scripted", note=note)
        if opening:
            self._slow_openings = self._slow_openings + 1 if raw is None else 0
        if raw is None:
            return Reply(self.scripted(person_said), "scripted", note="llm slower than the spoken reply allows")
        text = clean_reply(raw)
        if reflection and draft.spoken == reflection:
            # The model was asked for the question only: whatever it said before it is dropped
            # (SmolLM2 has opened with the session's own disclosure).
            text = f"{reflection} {_question_of(text)}"
        problem = draft.cut_short or reply_problem(text, person_said) or _asked_before(text, history)
        if problem is None:
            return Reply(text, "llm")
        salvaged = salvage_reply(text, person_said)
        if salvaged and salvaged != text and not _asked_before(salvaged, history):
            return Reply(salvaged, "llm", note="trimmed")
        return Reply(self.scripted(person_said), "scripted", note=f"llm reply rejected: {problem}")

    def _skip_slow_opening(self) -> bool:
        """Whether to use the guide's question at once: see ``SpokenTiming.slow_openings_before_skipping``."""
        if self._slow_openings < self.timing.slow_openings_before_skipping:
            return False
        self._skipped_openings += 1
        return self._skipped_openings % 3 != 0

    def _generate_within(self, messages: list[Message], person_said: str, on_sentence: Callable[[str, str], bool] | None,
                         budget_s: float | None, draft: _Draft) -> str | None:
        """:meth:`_generate`, given up (None) if nothing usable exists after ``budget_s``.

        Usable: the whole reply, or a first sentence that went to ``on_sentence`` (then
        the rest is awaited, bounded by the model's own timeout). The model runs on a
        thread, so a slow first token cannot hold the reply up; a reply given up is
        closed at its next piece.
        """
        if budget_s is None:
            return self._generate(messages, draft, person_said, on_sentence)
        outcome: dict[str, object] = {}
        finished, given_up, spoke = threading.Event(), threading.Event(), threading.Event()
        guard = threading.Lock()

        def offer(sentence: str, source: str) -> bool:  # on the model's thread
            with guard:
                used = not given_up.is_set() and on_sentence is not None and on_sentence(sentence, source)
                if used:
                    spoke.set()
                return used

        def work() -> None:
            try:
                outcome["text"] = self._generate(messages, draft, person_said, offer if on_sentence else None, given_up)
            except Exception as exc:  # noqa: BLE001 - re-raised on the caller's thread
                outcome["error"] = exc
            finally:
                finished.set()

        threading.Thread(target=work, name="voicereflect-reply", daemon=True).start()
        if not finished.wait(budget_s):
            with guard:
                if not spoke.is_set():
                    given_up.set()
                    return None
            finished.wait()
        if "error" in outcome:
            raise outcome["error"]  # type: ignore[misc]
        return outcome["text"]  # type: ignore[return-value]

    def _generate(self, messages: list[Message], draft: _Draft, person_said: str = "",
                  on_sentence: Callable[[str, str], bool] | None = None, stop: threading.Event | None = None) -> str:
        """Stream the reply, stopping at its first question or once it is already too long.

        Only the text up to the first question mark is ever used, so generating past it
        (small models ramble for a hundred tokens) only adds seconds of waiting; so does
        finishing a reply whose words already fail a check ("I'm glad..."). The first
        sentence goes to ``on_sentence`` the moment it is complete and passes its checks.
        """
        limit = max_reply_words()
        pieces: list[str] = []
        stream = self.chat.stream(messages)
        try:
            for piece in stream:
                if stop is not None and stop.is_set():
                    break
                pieces.append(piece)
                text = "".join(pieces)
                if "?" in text or len(text.split()) > limit:
                    break
                doomed = partial_problem(_settled(text))
                if doomed:
                    draft.cut_short = doomed  # it would fail the same check in _choose, after the wait
                    break
                if on_sentence is not None and not draft.offered:
                    self._offer_first_sentence(text, person_said, on_sentence, draft)
        finally:
            close = getattr(stream, "close", None)
            if close:
                close()  # closing the HTTP stream tells the server to stop generating
        text = "".join(pieces)
        return text[: text.index("?") + 1] if "?" in text else text

    @staticmethod
    def _offer_first_sentence(text: str, person_said: str, on_sentence: Callable[[str, str], bool],
                              draft: _Draft) -> None:
        match = _FIRST_SENTENCE.match(text)
        if match is None:
            return
        draft.offered = True
        sentence = clean_reply(match.group(1))
        if sentence_problem(sentence, person_said) is None and on_sentence(sentence, "llm"):
            draft.spoken = sentence
