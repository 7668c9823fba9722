"""Looking back: sessions search, flag, unflag, tag, show and list, through the real CLI on real files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.cli_helpers import run_cli, session_json, sessions_json
from voicereflect.store import TinyDBSessionStore
from voicereflect.types import AudioClip, Turn


@pytest.fixture
def saved(home):
    """Two sessions; a name said mid-sentence in the second."""
    store = TinyDBSessionStore(home)
    first = store.start_session("open")
    store.add_turn(first, Turn(role="assistant", text="What is on your mind?"))
    store.add_turn(first, Turn(role="user", text="Work was loud and I could not think."))
    store.end_session(first)
    second = store.start_session("conversation")
    store.add_turn(second, Turn(role="assistant", text="Who is the conversation with?"))
    audio = store.save_audio(second, AudioClip(np.zeros(1600, np.float32)))
    store.add_turn(second, Turn(role="user", text="I need to talk to Marguerite about the move.", audio=audio))
    store.add_turn(second, Turn(role="assistant", text="The move. What do you want Marguerite to hear?"))
    store.end_session(second)
    return store, first, second


def test_search_finds_a_name_with_its_lines_in_every_session(home, saved):
    _, _, second = saved
    result = run_cli(home, "sessions", "search", "marguerite", "--json")
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert [(m["session_id"], m["turn"], m["role"]) for m in found] == [(second, 1, "user"), (second, 2, "assistant")]
    human = run_cli(home, "sessions", "search", "Marguerite move")
    assert f"{second} #1" in human.stdout and "I need to talk to Marguerite about the move." in human.stdout
    nothing = run_cli(home, "sessions", "search", "marg")  # whole words only
    assert nothing.returncode == 0 and nothing.stdout == "" and "No turn contains" in nothing.stderr


def test_flag_unflag_and_tag_are_saved_and_shown(home, saved):
    _, first, second = saved
    assert run_cli(home, "sessions", "flag", second, "1").returncode == 0
    assert run_cli(home, "sessions", "tag", second, "Moving", "family").returncode == 0
    record = session_json(home, second)
    assert run_cli(home, "sessions", "tag", second, "moving").returncode == 0  # the same tag, any case
    record = session_json(home, second)
    assert record["notes"]["flagged"] == [1] and record["notes"]["tags"] == ["Moving", "family"]
    rows = {r["id"]: r for r in sessions_json(home)}
    assert rows[second]["flagged"] == 1 and rows[second]["tags"] == ["Moving", "family"] and rows[first]["flagged"] == 0
    listing = run_cli(home, "sessions", "list").stdout
    assert "*1" in listing and "[Moving, family]" in listing
    shown = run_cli(home, "sessions", "show", second).stdout
    assert "#1" in shown and "Marguerite about the move.  [flagged]" in shown and "tags: Moving, family" in shown
    assert run_cli(home, "sessions", "unflag", second, "1").returncode == 0
    assert run_cli(home, "sessions", "tag", second, "--remove", "FAMILY").returncode == 0
    record = session_json(home, second)
    assert record["notes"]["flagged"] == [] and record["notes"]["tags"] == ["Moving"]


@pytest.mark.parametrize("args,message", [
    (["flag", "{second}", "2"], "only your own words"),
    (["flag", "{second}", "9"], "has turns 0 to 2"),
    (["flag", "20990101-000000-zzzz", "1"], "No session with id"),
    (["tag", "{second}", "x" * 41], "1 to 40 characters"),
    (["play", "{first}"], "no recording"),
])
def test_bad_review_commands_give_one_line_and_change_nothing(home, saved, args, message):
    _, first, second = saved
    before = session_json(home, second)
    result = run_cli(home, "sessions", *[a.format(first=first, second=second) for a in args])
    assert result.returncode == 1 and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert session_json(home, second) == before


@pytest.mark.slow
@pytest.mark.device
def test_play_sends_an_encrypted_recording_to_the_speaker(virtual_audio, home):
    """`sessions play` decrypts the person's own recording and plays it: heard on the virtual speaker."""
    from pathlib import Path

    import soundfile

    from tests.virtual_audio import SpeakerRecorder
    from voicereflect.config import SttSettings
    from voicereflect.encryption import open_data_folder
    from voicereflect.stt import WhisperTranscriber

    samples, rate = soundfile.read(Path(__file__).parent / "data" / "harvard-16k.wav", dtype="float32")
    spoken = AudioClip(samples[int(14.9 * rate):int(17.6 * rate)], rate)  # "Small children came to see him."
    store = TinyDBSessionStore(home, seal=open_data_folder(home, encrypt=True, passphrase=lambda new: "pass phrase"))
    session_id = store.start_session("open")
    audio = store.save_audio(session_id, spoken)
    store.add_turn(session_id, Turn(role="user", text="Small children came to see him.", audio=audio))
    assert not (home / audio).read_bytes().startswith(b"RIFF")

    with SpeakerRecorder() as speaker:
        result = run_cli(home, "sessions", "play", session_id, "0", VOICEREFLECT_PASSPHRASE="pass phrase")
    assert result.returncode == 0, result.stderr
    heard = speaker.stop()
    transcriber = WhisperTranscriber(SttSettings())
    transcriber.load()
    text = transcriber.transcribe(heard).text.lower()
    assert "small children" in text and "see him" in text, text
