"""The tiers of the risk check in a spoken session, through the virtual microphone and speaker."""

from __future__ import annotations

import pytest

from tests.cli_helpers import session_json, sessions_json
from tests.test_hands_free import RunningTalk, piper, spoken  # noqa: F401 - piper is a fixture
from tests.virtual_audio import play_into_mic

pytestmark = [pytest.mark.slow, pytest.mark.device]


def test_a_spoken_passive_wish_is_asked_about_and_yes_shows_the_plan_and_resources(virtual_audio, tmp_path, piper):
    home = tmp_path / "home"
    from tests.cli_helpers import run_cli

    assert run_cli(home, "safety", "plan", "edit", stdin="\ncall my brother Tom\n\n").returncode == 0
    talk = RunningTalk(home)
    # Whole phrases: a lone short word ("skip") can be too short to be heard as a turn.
    for line in ["Lately I sort of wish I could just go to sleep and not wake up.", "Yes, sometimes I do.",
                 "That's all for today.", "I would rather not say."]:
        talk.wait_for("Listening...", timeout=180)
        play_into_mic(spoken(piper, line))
    stdout = talk.finish(timeout=180)
    assert talk.process.returncode == 0, "".join(talk.stderr)
    turns = session_json(home, sessions_json(home)[0]["id"])["turns"]
    users = [t for t in turns if t["role"] == "user"]
    assert "wake up" in users[0]["text"].lower() and "yes" in users[1]["text"].lower()
    first, second = users[0]["events"][0], users[1]["events"][0]
    assert first["type"] == "safety" and first["level"] in ("check_in", "concern")
    assert second["type"] == "safety" and second["level"] == "concern"
    asked = next(t for t in turns if t["role"] == "assistant" and "ending your life" in t["text"])
    assert asked["source"] == "safety"
    assert "call my brother Tom" in stdout and "988" in stdout
    assert stdout.index("call my brother Tom") < stdout.rindex("988")
