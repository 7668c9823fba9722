"""The reflection loop: hear a turn, check it for risk, handle commands, reply, speak, save.

Depends on interfaces and plain logic only. Every turn is saved the moment it exists.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TextIO

from voicereflect.commands import parse_command, parse_crisis_choice, parse_rating
from voicereflect.debug import debug_enabled
from voicereflect.errors import AudioDeviceError, SpeechError, StoreError, VoiceReflectError
from voicereflect.guides import Guide
from voicereflect.interfaces import InputChannel, SessionStore, Speaker
from voicereflect.recap import first_sentence, write_recap
from voicereflect.replies import echo
from voicereflect.reflection import Reflector
from voicereflect.safety import RiskChecker, RiskResult
from voicereflect.safety.context import SessionRisk
from voicereflect.safety.plan import SafetyPlan
from voicereflect.safety.responses import (after_no_message, check_in_message, concern_message, crisis_message,
                                           direct_question, parse_check_in_answer, spoken_concern_message, spoken_crisis_message)
from voicereflect.types import NOT_SAID, SessionNotes, Turn, UserInput, now_iso

DISCLOSURE = "I'm voicereflect, an AI reflection tool: not a therapist and not a crisis service."
LLM_DOWN_NOTICE = "I can't reach the language model right now, so I'll continue with prepared questions."
AFTER_CRISIS_END = ("Okay. Everything you said is saved. The support options stay available any time: "
                    "run voicereflect help to see them again.")
AFTER_CRISIS_CONTINUE = "Okay, we can go on, at your pace."
NOT_TRANSCRIBED = "I couldn't make out the words just then, but your recording is saved. Could you say it again?"
RATING_QUESTION = "Before you go: how intense did today feel, from 1 to 10? Or say skip."
NOTHING_TO_FLAG = "There's nothing to flag yet. Say what you want to keep, then say: flag that."


class Console:
    """Prints both sides of the conversation to stdout and status lines to stderr."""

    def __init__(self, out: TextIO | None = None, status: TextIO | None = None) -> None:
        """Args: out: where the conversation goes (stdout). status: where status lines go (stderr)."""
        self.out = out or sys.stdout
        self.status_stream = status or sys.stderr

    def said(self, role: str, text: str) -> None:
        """Print one side of the conversation."""
        label = "you" if role == "user" else "voicereflect"
        print(f"{label}: {text}", file=self.out, flush=True)

    def status(self, text: str) -> None:
        """Print a status line such as "Listening..."."""
        print(text, file=self.status_stream, flush=True)

    def timing(self, stages: dict[str, float]) -> None:
        """With VOICEREFLECT_DEBUG=1, print how long each stage of a turn took (never any words)."""
        if debug_enabled():
            print("[timing] " + "  ".join(f"{k} {v:.2f}s" for k, v in stages.items()), file=self.status_stream, flush=True)


@dataclass
class SessionOutcome:
    """How a session ended."""

    session_id: str
    replies: int
    status: str


class ReflectionSession:
    """One conversation: greeting, then turns until the person ends it or input ends."""

    def __init__(self, *, inputs: InputChannel, reflector: Reflector, speaker: Speaker, store: SessionStore,
                 console: Console, safety: SessionRisk | None = None, safety_plan: SafetyPlan | None = None,
                 keep_audio: bool = True, ask_rating: bool = True, recap: bool = True,
                 stream_replies: bool = True) -> None:
        """Wire the stages together; nothing runs until :meth:`run`.

        ``safety``: the risk check with the session's turns in view (default: the packaged
        patterns and judge). ``safety_plan``: the person's own plan, shown first when the
        check hears concern or crisis.
        ``ask_rating``: when the person ends the session, ask once for a 1-10 intensity
        (skippable). ``recap``: save a short summary when the session ends.
        ``stream_replies``: speak a reply's first sentence while the rest is generated.
        """
        self.inputs = inputs
        self.reflector = reflector
        self.speaker = speaker
        self.store = store
        self.console = console
        self.safety = safety or SessionRisk(RiskChecker())
        self.safety_plan = safety_plan
        self.keep_audio = keep_audio
        self.ask_rating = ask_rating
        self.recap = recap
        self.stream_replies = stream_replies
        self.notes = SessionNotes()
        self.history: list[Turn] = []
        """Every turn saved so far, in order: its position is the turn's index in the store."""
        self.session_id = ""
        self.replies = 0
        self.awaiting_crisis_choice = False
        self.awaiting_check_in = False
        self.asked_directly = False
        """Whether the person was asked directly about suicide or self-harm this session (asked once only)."""
        self._speech_failed = False
        self._status = "complete"
        self._watch = None  # listens for the person talking over a reply
        self._input_at = 0.0  # when the last input arrived (time.monotonic), for the turn's timing
        self._calibrated = False

    def run(self, max_turns: int | None = None, greet: bool = True) -> SessionOutcome:
        """Run until "end session", end of input, ``max_turns`` replies, or Ctrl-C; the session is closed either way."""
        guide = self.reflector.guide
        self.session_id = self.store.start_session(guide.id)
        live = getattr(self.store, "live", None)
        with live(self.session_id) if live else contextlib.nullcontext():
            return self._run(guide, max_turns, greet)

    def _run(self, guide: Guide, max_turns: int | None, greet: bool) -> SessionOutcome:
        open_recording = getattr(self.store, "open_recording", None)
        record_to = getattr(self.inputs, "record_to", None)
        if open_recording and record_to:  # stream speech to disk as it is spoken
            record_to(lambda: open_recording(self.session_id))
        try:
            # The AI disclosure is never optional; `greet` only controls the opening question.
            self._assistant(f"{DISCLOSURE} {guide.opening}" if greet else DISCLOSURE, source="system")
            while max_turns is None or self.replies < max_turns:
                heard = self._next_input()
                if heard is None or not self.handle(heard):
                    break
        except KeyboardInterrupt:
            self._status = "stopped"
            self.console.status("Stopped. Your session is saved.")
        except BaseException:
            self._status = "interrupted"
            raise
        finally:
            if self.recap and self._status != "interrupted":
                self._save_recap()
            try:
                self.store.end_session(self.session_id, self._status)
            except StoreError as exc:
                self.console.status(f"Could not mark the session ended: {exc}")
        return SessionOutcome(self.session_id, self.replies, self._status)

    def handle(self, heard: UserInput) -> bool:
        """Handle one thing the person said; False when the session should end.

        The risk check comes first, before commands and before any LLM call.
        """
        if heard.failure:
            self._save_user(heard, ({"type": "stt_failed", "error": heard.failure[:200]},))
            self._assistant(NOT_TRANSCRIBED, source="system", counts=False)
            return True
        risk = self.safety.check(heard.text)
        if self.awaiting_check_in:
            self.awaiting_check_in = False
            if risk.level != "crisis" and self._answer_check_in(heard, risk):
                return True
        if risk.risk:
            self._respond_to_risk(heard, risk)
            return True
        if self.awaiting_crisis_choice:
            self.awaiting_crisis_choice = False
            choice = parse_crisis_choice(heard.text)
            if choice in ("end", "pause"):
                self._save_user(heard, ({"type": "crisis_choice", "choice": choice},))
                self._status = "paused" if choice == "pause" else "complete"
                self._assistant(AFTER_CRISIS_END, source="safety", counts=False)
                return False
            if choice == "continue":
                self._save_user(heard, ({"type": "crisis_choice", "choice": choice},))
                question = self.reflector.progress.scripted_question()
                self._assistant(f"{AFTER_CRISIS_CONTINUE} {question}", source="scripted")
                return True
        command = parse_command(heard.text)
        if command == "end":
            self._save_user(heard, ({"type": "command", "command": command},))
            if self.ask_rating and not self._take_rating():
                return True  # the answer met the risk check: resources first, the session goes on
            self._assistant(self.reflector.guide.closing, source="system")
            return False
        if command == "flag":
            self._save_user(heard, ({"type": "command", "command": command},))
            self._flag_last_said()
            return True
        if command:
            self._save_user(heard, ({"type": "command", "command": command},))
            self._steer(command)
            return True
        self.take_turn(heard)
        return True

    def take_turn(self, heard: UserInput) -> Turn:
        """Save the person's turn, then reply with one checked question.

        The reply's first sentence is spoken the moment the model has written it (and it
        passes the reply and risk checks), while the rest is still being generated.
        """
        self._save_user(heard, self._stage_mark())
        self.console.status("Thinking...")
        heard_at = time.monotonic()
        marks: dict[str, float] = {}
        spoken: list[str] = []

        def speak_first_sentence(sentence: str, source: str) -> bool:
            # The person's own words were checked above; the model's are checked before they are said.
            if (source != "echo" and self.safety.check_reply(sentence).risk) or not self._start_speaking(sentence):
                return False
            marks["first sentence"] = time.monotonic() - heard_at
            spoken.append(sentence)
            return True

        reply = self.reflector.reply(self.history, on_sentence=speak_first_sentence if self.stream_replies else None)
        replied_at = time.monotonic()
        if reply.note == "llm-unavailable":
            self._assistant(LLM_DOWN_NOTICE, source="system", counts=False)
        if reply.source == "llm" and self.safety.check_reply(reply.text).risk:
            question = self.reflector.progress.scripted_question()
            reply = replace(reply, text=" ".join([*spoken, question]), source="scripted")
        turn = self._assistant(reply.text, source=reply.source, already_spoken=spoken[0] if spoken else "")
        stages = {**marks, "reply": replied_at - heard_at, "speak": time.monotonic() - replied_at}
        if heard.utterance is not None and heard.utterance.speech_end_monotonic:
            input_at = self._input_at or heard_at
            stages = {"endpoint+stt": input_at - heard.utterance.speech_end_monotonic,
                      "checks+save": heard_at - input_at, **stages}
        self.console.timing(stages)
        return turn

    def prepare_reply(self, words: str) -> None:
        """While the endpoint may still be pending: synthesize what the reply would most likely start with.

        Called from the listener's worker with the words heard so far. Only synthesis happens
        (nothing is said before the words are saved and risk-checked); a guess that turns out
        wrong is simply not used.
        """
        prepare = getattr(self.speaker, "prepare", None)
        if (prepare is None or not self.stream_replies or self.awaiting_crisis_choice or self.awaiting_check_in
                or self.reflector.scripted_only):
            return
        prepare(echo(words) or self.reflector.progress.scripted_question())

    def _stage_mark(self) -> tuple[dict, ...]:
        """The guide stage's mark for the person's turn (a rehearsal attempt, a session wish), if it has one.

        A turn the risk check answered keeps it too, so a false alarm never drops the
        person's words from their brief.
        """
        stage = self.reflector.progress.stage
        return ({"type": stage.mark, "stage": stage.id},) if stage.mark else ()

    def _respond_to_risk(self, heard: UserInput, risk: RiskResult) -> None:
        """Answer a turn the risk check heard something in, by its level; the words are always saved."""
        if risk.level == "check_in" and self.asked_directly:
            risk = self.safety.escalate(risk, "concern", "asked directly once already this session")
        if risk.level == "crisis":
            self._crisis(heard, risk)
        elif risk.level == "concern":
            self._concern(heard, risk)
        else:
            self._check_in(heard, risk)

    def _answer_check_in(self, heard: UserInput, risk: RiskResult) -> bool:
        """The answer to the direct question: a plain "no" goes on (still listening); anything else is concern.

        "End session" instead of an answer ends the session as asked, after the safety plan and
        resources are shown; False then, so the command is handled as usual.
        """
        if parse_command(heard.text) == "end":
            unanswered = self.safety.escalate(risk, "concern", "ended the session instead of answering")
            self.console.said("assistant", concern_message(unanswered, self.safety_plan))
            return False
        if parse_check_in_answer(heard.text) == "yes":
            self._concern(heard, self.safety.escalate(risk, "concern", "answered the direct question: yes or unsure"))
            return True
        self._save_user(heard, (_safety_event(risk, answer="no"), *self._stage_mark()))
        self._assistant(f"{after_no_message()} {self.reflector.progress.scripted_question()}", source="scripted")
        return True

    def _check_in(self, heard: UserInput, risk: RiskResult) -> None:
        """Unsure: reflect what was said and ask once, plainly, about suicide and self-harm."""
        self._save_user(heard, (_safety_event(risk), *self._stage_mark()))
        self.asked_directly = self.awaiting_check_in = True
        self._assistant(check_in_message(echo(heard.text)), source="safety", counts=False)

    def _concern(self, heard: UserInput, risk: RiskResult) -> None:
        """Validate, show the person's safety plan and the resources, then ask directly (once) or go on gently.

        The first time in a session the person is also asked directly about suicide and
        self-harm; after that the guide's scripted questions carry on, at their pace.
        """
        self.console.said("assistant", concern_message(risk, self.safety_plan))  # first, even if storage is down
        self.reflector.scripted_only = True  # be more careful for the rest of the session
        ask = not self.asked_directly
        follow = direct_question() if ask else self.reflector.progress.scripted_question()
        self.asked_directly = True
        self.awaiting_check_in = ask
        try:
            self._save_user(heard, (_safety_event(risk), *self._stage_mark()))
            self.console.said("assistant", follow)
            self._assistant(f"{spoken_concern_message()} {follow}", source="safety", show=False, counts=False)
        except StoreError as exc:
            self.console.status(f"Could not save this turn: {exc}")
            self._speak(f"{spoken_concern_message()} {follow}")

    def _crisis(self, heard: UserInput, risk: RiskResult) -> None:
        """Stop the normal flow: record the event, show and say resources, ask how to go on."""
        self.console.said("assistant", crisis_message(risk, self.safety_plan))  # first: shown even if storage is down
        self.reflector.scripted_only = True  # be more careful for the rest of the session
        self.awaiting_crisis_choice = True
        try:
            self._save_user(heard, (_safety_event(risk), *self._stage_mark()))
            self._assistant(spoken_crisis_message(risk), source="safety", show=False, counts=False)
        except StoreError as exc:
            self.console.status(f"Could not save this turn: {exc}")
            self._speak(spoken_crisis_message(risk))

    def _flag_last_said(self) -> None:
        """Flag the person's last turn (not a command) for therapy, and say which."""
        said = [i for i, t in enumerate(self.history)
                if t.role == "user" and not any(e.get("type") in NOT_SAID for e in t.events)]
        if not said:
            self._assistant(NOTHING_TO_FLAG, source="system", counts=False)
            return
        index = max(said)
        self._annotate(lambda notes: replace(notes, flagged=tuple(sorted({*notes.flagged, index}))))
        quoted = first_sentence(self.history[index].text, max_words=10).rstrip(".!?,;: ")
        self._assistant(f"Flagged: \u201c{quoted}\u201d. It will be in your prep brief.", source="system", counts=False)

    def _take_rating(self) -> bool:
        """Ask once for a 1-10 intensity; False if the answer met the risk check (the session goes on)."""
        self._assistant(RATING_QUESTION, source="system", counts=False)
        answer = self._next_input()
        if answer is None:
            return True
        if answer.failure:  # keep the recording, as for any turn that could not be transcribed
            self._save_user(answer, ({"type": "stt_failed", "error": answer.failure[:200]},))
            return True
        risk = self.safety.check(answer.text)
        if risk.risk:
            self._respond_to_risk(answer, risk)
            return False
        rating = parse_rating(answer.text)
        self._save_user(answer, ({"type": "rating", "value": rating},))
        if rating is not None:
            self._annotate(lambda notes: replace(notes, rating=rating))
        return True

    def _save_recap(self) -> None:
        """Save a short summary; the language model writes it only for a session that ended normally."""
        use_model = self._status == "complete" and not self.reflector.scripted_only and not self.reflector.llm_failed
        try:
            if use_model and self.reflector.chat is not None:
                self.console.status("Writing a short summary...")
            text, source = write_recap(self.history, self.notes, self.reflector.chat if use_model else None)
            if text:
                self._annotate(lambda notes: replace(notes, recap=text, recap_source=source))
        except (VoiceReflectError, KeyboardInterrupt) as exc:
            self.console.status(f"No summary was saved ({type(exc).__name__}); every turn is.")

    def _annotate(self, change: Callable[[SessionNotes], SessionNotes]) -> None:
        """Change the session's notes; a failure is said and the session goes on (notes are extras)."""
        try:
            self.notes = self.store.update_notes(self.session_id, change)
        except StoreError as exc:
            self.console.status(f"Could not save that note: {exc}")

    def _steer(self, command: str) -> None:
        last = next((t.text for t in reversed(self.history) if t.role == "assistant"), self.reflector.guide.opening)
        if command in ("skip", "back"):
            self._assistant(self.reflector.jump(command), source="scripted", counts=False)
            return
        if command == "slower":
            slower = getattr(self.speaker, "slower", None)
            if slower:
                slower()
        self._assistant(last, source="repeat", counts=False)

    def _next_input(self) -> UserInput | None:
        self.console.status("Listening...")
        heard = self.inputs.next_input()
        self._input_at = time.monotonic()  # for the turn's timing: the words are ready
        return heard

    def _save_user(self, heard: UserInput, events: tuple[dict, ...] = ()) -> Turn:
        audio = None
        streamed = heard.utterance.recording if heard.utterance is not None else None
        if heard.utterance is not None and self.keep_audio:
            try:
                audio = (self.store.adopt_recording(self.session_id, streamed) if streamed  # type: ignore[attr-defined]
                         else self.store.save_audio(self.session_id, heard.utterance.clip))
            except StoreError as exc:
                self.console.status(f"Could not save the recording ({exc}); the words are still saved.")
        if streamed is not None and audio is None:
            # Named on the turn, so recovery after a crash right after add_turn knows these words are saved.
            events = (*events, {"type": "recording_not_kept", "file": streamed.name})
        turn = Turn(role="user", text=heard.text, started_at=heard.started_at, source=heard.source,
                    audio=audio, events=events)
        self.store.add_turn(self.session_id, turn)
        if streamed is not None and audio is None:
            streamed.unlink(missing_ok=True)  # it was kept only until the words were committed
        self.history.append(turn)
        self.console.said("user", heard.text)
        return turn

    def _assistant(self, text: str, *, source: str, show: bool = True, counts: bool = True,
                   already_spoken: str = "") -> Turn:
        """Save and show an assistant turn, then speak it (all but ``already_spoken``, its start)."""
        turn = Turn(role="assistant", text=text, source=source)
        self.store.add_turn(self.session_id, turn)
        self.history.append(turn)
        if show:
            self.console.said("assistant", text)
        if counts and source != "system":
            self.replies += 1
        self._speak(text[len(already_spoken):].strip() if already_spoken else text)
        return turn

    def _speak(self, text: str) -> None:
        """Say ``text`` (after anything already started) and wait until it is heard or the person talks over it."""
        talked_over = self._watch is not None and self._watch.interrupted.is_set()
        if not talked_over and self._start_speaking(text):
            try:
                watch = self._watch
                if not self.speaker.finish(watch.interrupted if watch is not None else None):
                    self.console.status("(you started speaking: listening)")
            except (SpeechError, AudioDeviceError) as exc:
                self._speech_failure(exc)
        if self._watch is not None:
            self._watch.stop()
            self._watch = None

    def _start_speaking(self, text: str) -> bool:
        """Start saying ``text`` without waiting; False once speech has failed (text only from then on).

        The microphone is watched from the first sentence on, so the person can talk over
        the reply (barge-in); the session's first words (the greeting) calibrate how much of
        the speaker the microphone hears instead.
        """
        if self._speech_failed:
            return False
        try:
            self.speaker.start(text)
        except (SpeechError, AudioDeviceError) as exc:
            self._speech_failure(exc)
            return False
        watch = getattr(self.inputs, "watch", None)
        reference = getattr(self.speaker, "player", None)
        if self._watch is None and watch is not None and reference is not None:
            self._watch = watch(reference, calibrate=not self._calibrated)
            self._calibrated = True
        return True

    def _speech_failure(self, exc: Exception) -> None:
        if not self._speech_failed:
            self.console.status(f"{exc} Continuing in text only.")
        self._speech_failed = True


def _safety_event(risk: RiskResult, **extra: str) -> dict:
    """What a turn records of the risk check: the level and its reasons, never extra content."""
    return {"type": "safety", "at": now_iso(), "level": risk.level, "reasons": list(risk.reasons),
            "category": risk.category, "severity": risk.severity,
            "resources_locale": risk.resources.locale if risk.resources else "", **extra}
