"""Guides, the system prompt, and the reply checks that keep even a tiny model's replies safe."""

from __future__ import annotations

import pytest

from tests.fakes import PacedChat, ScriptedChat
from voicereflect.errors import ConfigError
from voicereflect.guides import get_guide, load_guides
from voicereflect.reflection import Reflector, SpokenTiming
from voicereflect.replies import clean_reply, reply_problem, salvage_reply
from voicereflect.types import Turn


def test_builtin_open_guide_loads_with_stages_and_questions():
    guide = get_guide("open")
    assert guide.title and guide.opening.endswith("?")
    assert all(reply_problem(q) is None for s in guide.stages for q in s.questions)


def test_unknown_guide_lists_known_ones():
    with pytest.raises(ConfigError, match="open"):
        get_guide("nope")


def test_user_guide_folder_adds_guides(tmp_path):
    (tmp_path / "mine.toml").write_text(
        'id = "mine"\ntitle = "Mine"\ndescription = "d"\nopening = "Hi?"\n'
        '[[stages]]\nid = "a"\nintent = "i"\nquestions = ["What now?"]\n')
    assert "mine" in load_guides(tmp_path) and "open" in load_guides(tmp_path)


def test_broken_user_guide_is_named(tmp_path):
    (tmp_path / "bad.toml").write_text('id = "bad"\n')
    with pytest.raises(ConfigError, match="bad.toml"):
        load_guides(tmp_path)


@pytest.mark.parametrize("reply", [
    "A long day at work. What made it feel long?",
    "You mentioned your sister. What was said between you?",
    "You asked her one question. What did she say?",
])
def test_good_replies_pass(reply):
    assert reply_problem(reply) is None


@pytest.mark.parametrize("reply,why", [
    ("What happened? And how did you feel?", "question"),
    ("That sounds hard.", "question"),
    ("It sounds like you have depression. What else?", "forbidden"),
    ("You should talk to your doctor about it. What do you think?", "forbidden"),
    ("I recommend you stop taking your medication. How is that?", "forbidden"),
    ("Maybe try 20 mg of sertraline? ", "forbidden"),
    ("That is amazing! What next?", "forbidden"),
    ("As your therapist, what do you feel?", "forbidden"),
    ("Call 555-123-4567 now. Will you?", "forbidden"),
    ("You want to bring this up. Now ask one question: What would you like to bring?", "forbidden"),
    ("Next, in one short reply ending with one question: what matters?", "forbidden"),
    (" ".join(["word"] * 70) + "?", "too long"),
    ("", "empty"),
])
def test_bad_replies_fail(reply, why):
    assert why in (reply_problem(reply) or "")


def test_salvage_keeps_only_a_good_first_question():
    assert salvage_reply("What stood out to you? Also, you should rest.") == "What stood out to you?"
    assert salvage_reply("You should rest. What stood out?") is None
    assert clean_reply('Assistant:  "What stood out?" ') == "What stood out?"


def test_reflector_keeps_a_good_reply_and_trims_a_rambling_one():
    guide = get_guide("open")
    history = [Turn(role="user", text="I argued with my sister.")]
    good = Reflector(guide=guide, chat=ScriptedChat(["An argument with your sister. What was it about?"]))
    assert good.reply(history).source == "llm"
    chat = ScriptedChat(["What was it about? I think you must apologise! " + "and so on " * 40])
    reply = Reflector(guide=guide, chat=chat).reply(history)
    assert reply.text == "What was it about?" and reply.source == "llm"


def test_reflector_stops_reading_a_reply_that_is_already_too_long():
    endless = ScriptedChat([" ".join(f"word{i}" for i in range(500))])
    reply = Reflector(guide=get_guide("open"), chat=endless).reply([Turn(role="user", text="hi")])
    assert reply.source == "scripted" and "too long" in reply.note
    assert endless.pieces_sent < 70


def test_reflector_stops_reading_a_reply_at_its_first_forbidden_words():
    chat = ScriptedChat(["I'm so glad you told me. " + "More words here. " * 40 + "What else?"])
    reply = Reflector(guide=get_guide("open"), chat=chat).reply([Turn(role="user", text="I had a hard day")])
    assert reply.source == "scripted" and "forbidden" in reply.note
    assert chat.pieces_sent <= 6  # "I'm so glad you" and one more word: not the 120 that follow


def test_looping_reply_is_rejected():
    assert reply_problem("What is it that you want, what is it that you want?") == "repeats itself"


def test_history_is_bounded_and_ends_with_the_stage_intent():
    guide = get_guide("open")
    reflector = Reflector(guide=guide, chat=None)
    history = [Turn(role="user", text=f"line {i}") for i in range(30)]
    messages = reflector.build_messages(history)
    assert len(messages) <= 10
    assert messages[-1].role == "system" and guide.stages[0].intent in messages[-1].content
    assert messages[-2].content == "<person>line 29</person>"


def test_a_reply_that_repeats_an_earlier_question_is_replaced():
    guide = get_guide("conversation")
    history = [Turn(role="assistant", text="What happened in that conversation?"),
               Turn(role="user", text="My dad said I was ungrateful.")]
    reply = Reflector(guide=guide, chat=ScriptedChat(["What happened in the conversation?"])).reply(history)
    assert reply.source == "scripted" and "earlier question" in reply.note


def test_a_reply_whose_question_was_asked_before_is_replaced():
    """SmolLM2 ends reply after reply with "What's on your mind?", which the greeting already asked."""
    history = [Turn(role="assistant", text="I'm voicereflect, a reflection tool. What is on your mind today?"),
               Turn(role="user", text="I snapped at a colleague and I feel bad about it.")]
    chat = ScriptedChat(["You snapped at a colleague. What's on your mind?"])
    reply = Reflector(guide=get_guide("open"), chat=chat).reply(history)
    assert reply.source == "scripted" and "earlier question" in reply.note, reply
    fresh = ScriptedChat(["You snapped at a colleague. What happened just before that?"])
    assert Reflector(guide=get_guide("open"), chat=fresh).reply(history).source == "llm"


def test_a_model_slower_than_the_spoken_reply_allows_gives_way_to_the_guide():
    chat = PacedChat(["Work sounds heavy. What stands out about it?"], first_piece_s=[0.5])
    reflector = Reflector(guide=get_guide("open"), chat=chat, timing=SpokenTiming(first_sentence_s=0.05))
    said: list[str] = []
    reply = reflector.reply([Turn(role="user", text="Work with my sister was hard.")],
                            on_sentence=lambda sentence, source: said.append(sentence) or True)
    assert reply.source == "scripted" and "slower" in reply.note and said == []


def test_a_model_that_keeps_missing_the_first_sentence_is_not_waited_for_every_time():
    """After two misses in a row, replies with nothing to reflect first go to the guide at once; every third tries again."""
    chat = PacedChat(["Work sounds heavy. What stands out about it?"] * 6, first_piece_s=[0.3] * 6)
    reflector = Reflector(guide=get_guide("open"), chat=chat, timing=SpokenTiming(first_sentence_s=0.05))
    notes = []
    for _ in range(6):
        reply = reflector.reply([Turn(role="user", text="Work has been really stressful this week.")],
                                on_sentence=lambda sentence, source: True)
        notes.append(reply.note)
    slow, skipped = "llm slower than the spoken reply allows", "llm too slow to open a spoken reply lately"
    assert notes == [slow, slow, skipped, skipped, slow, skipped]
    assert len(chat.delays) == 3  # the model was asked three times, not six


def test_a_model_given_up_on_cannot_touch_the_next_reply():
    """The first reply's model thread reads its doomed "I'm glad" while the second reply is made."""
    chat = PacedChat(["I'm glad you told me. What else?", "Your sister matters to you. What was hardest about working with her?"],
                     first_piece_s=[0.3, 0.5])
    reflector = Reflector(guide=get_guide("open"), chat=chat, timing=SpokenTiming(first_sentence_s=0.05))
    history = [Turn(role="user", text="Work with my sister was hard.")]
    first = reflector.reply(history, on_sentence=lambda sentence, source: True)
    assert first.source == "scripted"
    history += [Turn(role="assistant", text=first.text), Turn(role="user", text="Work with my sister was hard again.")]
    second = reflector.reply(history)  # a typed session: no time limit
    assert second == second.__class__("Your sister matters to you. What was hardest about working with her?", "llm")
