"""The reflection loop over stand-ins, and over both stores (memory and real TinyDB files)."""

from __future__ import annotations

import io

import pytest

from tests.fakes import RecordingSpeaker, ScriptedChat, ScriptedInput
from voicereflect.errors import LLMError
from voicereflect.reflection import Reflector, get_guide
from voicereflect.session import DISCLOSURE, LLM_DOWN_NOTICE, Console, ReflectionSession, is_end_request
from voicereflect.store import MemorySessionStore, TinyDBSessionStore


@pytest.fixture(params=["memory", "tinydb"])
def store(request, tmp_path):
    return MemorySessionStore() if request.param == "memory" else TinyDBSessionStore(tmp_path / "home")


def make_session(store, lines, replies, **kwargs):
    chat = ScriptedChat(replies)
    speaker = RecordingSpeaker()
    out, status = io.StringIO(), io.StringIO()
    session = ReflectionSession(
        inputs=ScriptedInput(lines, **kwargs), reflector=Reflector(guide=get_guide("open"), chat=chat),
        speaker=speaker, store=store, console=Console(out, status),
    )
    return session, chat, speaker, out


def test_greeting_discloses_ai_and_every_turn_is_saved_and_spoken(store):
    session, _, speaker, out = make_session(
        store, ["I had a long day at work."], ["A long day at work. What made it feel long?"])
    outcome = session.run()
    record = store.get_session(outcome.session_id)
    assert [t.role for t in record.turns] == ["assistant", "user", "assistant"]
    assert record.turns[0].text.startswith(DISCLOSURE)
    assert record.turns[1].text == "I had a long day at work."
    assert record.turns[2].text == "A long day at work. What made it feel long?"
    assert speaker.spoken == [record.turns[0].text, record.turns[2].text]
    assert "you: I had a long day at work." in out.getvalue()
    assert record.summary.status == "complete"


def test_max_turns_stops_after_that_many_replies(store):
    lines = ["one thing", "another thing", "a third thing"]
    replies = ["One thing. What else?", "Another thing. What else?", "A third. What else?"]
    session, _, _, _ = make_session(store, lines, replies)
    outcome = session.run(max_turns=2)
    assert outcome.replies == 2
    assert [t.text for t in store.get_session(outcome.session_id).turns if t.role == "user"] == lines[:2]


def test_end_phrase_ends_the_session_and_is_saved(store):
    session, chat, speaker, _ = make_session(store, ["That's all for today.", "not reached"], [])
    outcome = session.run()
    turns = store.get_session(outcome.session_id).turns
    assert turns[1].text == "That's all for today."
    assert turns[-1].source == "system" and "saved" in turns[-1].text
    assert chat.requests == []


@pytest.mark.parametrize("text,ends", [
    ("end session", True), ("Please end the session.", True), ("OK, that's all for today", True),
    ("stop session", True), ("goodbye", True),
    ("I wanted to end the session with my therapist early", False), ("my mum said goodbye to me", False),
])
def test_end_phrases(text, ends):
    assert is_end_request(text) is ends


def test_unreachable_llm_falls_back_to_scripted_questions_and_says_so_once(store):
    lines = ["first", "second", "third"]
    session, _, speaker, _ = make_session(store, lines, [LLMError("down"), LLMError("down"), LLMError("down")])
    outcome = session.run()
    turns = store.get_session(outcome.session_id).turns
    assistant = [t for t in turns[1:] if t.role == "assistant"]
    assert [t.text for t in assistant].count(LLM_DOWN_NOTICE) == 1
    guide = get_guide("open")
    scripted = [t.text for t in assistant if t.source == "scripted"]
    assert scripted == [guide.scripted_question(i) for i in range(3)]
    assert [t.text for t in turns if t.role == "user"] == lines


def test_bad_llm_reply_is_replaced_by_the_guide_question(store):
    session, _, _, _ = make_session(store, ["I feel low"], ["You should see a doctor about your depression disorder."])
    outcome = session.run()
    reply = store.get_session(outcome.session_id).turns[-1]
    assert reply.source == "scripted"
    assert reply.text == get_guide("open").scripted_question(0)


def test_risk_turn_shows_resources_records_event_and_skips_llm(store):
    session, chat, speaker, out = make_session(store, ["Honestly everyone would be better off without me."], ["unused?"])
    outcome = session.run()
    turns = store.get_session(outcome.session_id).turns
    user = turns[1]
    assert user.text == "Honestly everyone would be better off without me."  # never rewritten
    assert user.events[0]["type"] == "safety" and user.events[0]["category"] == "suicide"
    assert chat.requests == []
    assert "988" in out.getvalue()
    assert turns[2].source == "safety" and "continue, pause, or end" in speaker.spoken[-1]


def test_ctrl_c_saves_the_session_as_stopped(store):
    session, _, _, _ = make_session(store, ["one", "two"], ["One. What else?"], interrupt_after=1)
    outcome = session.run()
    record = store.get_session(outcome.session_id)
    assert outcome.status == "stopped" and record.summary.status == "stopped"
    assert [t.text for t in record.turns if t.role == "user"] == ["one"]


def test_llm_sees_the_persons_words_and_the_system_prompt(store):
    session, chat, _, _ = make_session(store, ["My sister and I argued."], ["An argument with your sister. What was said?"])
    session.run()
    messages = chat.requests[0]
    assert messages[0].role == "system" and "not a therapist" in messages[0].content
    assert any(m.role == "user" and m.content == "My sister and I argued." for m in messages)
