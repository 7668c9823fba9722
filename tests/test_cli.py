"""The real command line, in subprocesses: text sessions on the embedded LLM, transcribe, sessions, errors."""

from __future__ import annotations

import json
import os

import pytest

from tests.cli_helpers import REPO, run_cli, session_json, sessions_json
from voicereflect.replies import reply_problem

DATA = REPO / "tests" / "data"


@pytest.mark.slow
def test_text_session_on_embedded_llm_is_saved_and_listed(tmp_path):
    home = tmp_path / "home"
    lines = "I had an argument with my sister Maya about our mother.\nI keep replaying what she said.\n"
    result = run_cli(home, "talk", "--text", "--no-speak", stdin=lines)
    assert result.returncode == 0, result.stderr
    assert "not a therapist" in result.stdout
    assert "you: I had an argument with my sister Maya about our mother." in result.stdout
    rows = sessions_json(home)
    assert len(rows) == 1 and rows[0]["guide"] == "open" and rows[0]["turns"] == 5
    assert set(rows[0]) >= {"id", "started_at", "guide", "turns"}
    record = session_json(home, rows[0]["id"])
    roles = [t["role"] for t in record["turns"]]
    assert roles == ["assistant", "user", "assistant", "user", "assistant"]
    assert record["turns"][1]["text"] == "I had an argument with my sister Maya about our mother."
    for turn in record["turns"][2::2]:
        assert reply_problem(turn["text"]) is None
        assert set(turn) >= {"role", "text", "started_at"}
    human = run_cli(home, "sessions", "show", rows[0]["id"])
    assert "you: I keep replaying what she said." in human.stdout
    listing = run_cli(home, "sessions", "list")
    assert rows[0]["id"] in listing.stdout


@pytest.mark.slow
def test_max_turns_and_end_phrase(tmp_path):
    home = tmp_path / "home"
    result = run_cli(home, "talk", "--text", "--no-speak", "--max-turns", "1", stdin="first thing\nsecond thing\n")
    assert result.returncode == 0, result.stderr
    assert "second thing" not in result.stdout
    result = run_cli(home, "talk", "--text", "--no-speak", stdin="end session\nskip\nnot answered\n")
    assert result.returncode == 0
    assert "not answered" not in result.stdout
    assert [r["status"] for r in sessions_json(home)] == ["complete", "complete"]


@pytest.mark.slow
def test_text_session_survives_unreachable_llm(tmp_path):
    home = tmp_path / "home"
    config = tmp_path / "config.toml"
    config.write_text('[llm]\nbase_url = "http://127.0.0.1:9/v1"\nfirst_token_timeout_s = 1.0\n')
    result = run_cli(home, "--config", str(config), "talk", "--text", "--no-speak", stdin="one\ntwo\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("can't reach the language model") == 1
    record = session_json(home, sessions_json(home)[0]["id"])
    assert [t["text"] for t in record["turns"] if t["role"] == "user"] == ["one", "two"]


def test_risk_line_in_text_session_shows_resources_and_records_event(tmp_path):
    home = tmp_path / "home"
    config = tmp_path / "config.toml"
    config.write_text('[llm]\nbase_url = "http://127.0.0.1:9/v1"\nfirst_token_timeout_s = 1.0\n')
    result = run_cli(home, "--config", str(config), "talk", "--text", "--no-speak",
                     stdin="I've been stockpiling my pills\n")
    assert result.returncode == 0, result.stderr
    assert "988" in result.stdout and "911" in result.stdout
    turns = session_json(home, sessions_json(home)[0]["id"])["turns"]
    assert turns[1]["events"][0]["type"] == "safety"


@pytest.mark.slow
def test_transcribe_json_matches_reference(tmp_path):
    result = run_cli(tmp_path, "transcribe", "--json", str(DATA / "jfk.flac"), str(DATA / "fleurs-en-000.ogg"))
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [os.path.basename(r["file"]) for r in rows] == ["jfk.flac", "fleurs-en-000.ogg"]
    assert "ask not what your country can do for you" in rows[0]["text"].lower()
    assert 10.5 < rows[0]["duration_s"] < 11.5


@pytest.mark.parametrize("name,content", [("missing.wav", None), ("empty.wav", b""), ("noise.mp3", os.urandom(4096))])
def test_transcribe_bad_files_give_one_clear_line(tmp_path, name, content):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    expected = name
    result = run_cli(tmp_path, "transcribe", str(path))
    assert result.returncode == 1
    assert expected in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_unknown_session_id_is_one_line_and_exit_1(tmp_path):
    result = run_cli(tmp_path / "home", "sessions", "show", "20990101-000000-zzzz")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "20990101-000000-zzzz" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_broken_config_names_the_line(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text('[llm]\nbase_url = "embedded"\ntemperature = = 3\n')
    result = run_cli(tmp_path / "home", "--config", str(config), "sessions", "list")
    assert result.returncode == 1 and "line 3" in result.stderr and "Traceback" not in result.stderr


def test_wrong_type_in_config_names_section_and_key(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text('[stt]\nbeam_size = "five"\n')
    result = run_cli(tmp_path / "home", "--config", str(config), "sessions", "list")
    assert result.returncode == 1 and "[stt]" in result.stderr and "beam_size" in result.stderr


def test_remote_llm_is_refused_in_local_only_mode(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text('[llm]\nbase_url = "https://api.example.com/v1"\n')
    result = run_cli(tmp_path / "home", "--config", str(config), "talk", "--text", "--no-speak", stdin="hello\n")
    assert "local_only" in result.stderr


def test_help_and_version_are_instant_and_clean(tmp_path):
    result = run_cli(tmp_path, "--help")
    assert result.returncode == 0 and "talk" in result.stdout and "Quick start" in result.stdout
    assert run_cli(tmp_path, "--version").stdout.strip().endswith("0.1.0")


def test_safety_check_json(tmp_path):
    result = run_cli(tmp_path, "safety", "check", "--json", "I could kill for a coffee")
    assert json.loads(result.stdout)["risk"] is False
    result = run_cli(tmp_path, "safety", "check", "--json", "I want to end my life")
    data = json.loads(result.stdout)
    assert data["risk"] is True and data["category"] == "suicide" and data["resources"]["locale"] == "US"


def test_guides_list_json(tmp_path):
    rows = json.loads(run_cli(tmp_path, "guides", "list", "--json").stdout)
    assert {"id": "open"}.items() <= rows[0].items() or any(r["id"] == "open" for r in rows)


GUIDE_LINES = {
    "open": "My week was busy and I felt stretched thin.\nMostly work, and not seeing friends.\n",
    "conversation": "I need to talk to my flatmate about the noise.\nI worry she'll think I'm uptight.\n",
    "reaction": "I snapped at my brother when he was late.\nMy chest went tight before I even spoke.\n",
    "rehearse": "I want to tell my sister I can't host Christmas this year.\n"
                "Here is how I would say it: I love you, but I can't host this year.\n",
    "prep": "I want to talk about my mum next session.\nAnd how tired I've been.\n",
}


@pytest.mark.slow
@pytest.mark.parametrize("guide", sorted(GUIDE_LINES))
def test_every_guide_with_piped_input_exits(tmp_path, guide):
    """A session always ends: piped input, then "end session", and the process exits with its session saved.

    Before the model's open requests were closed at exit, the rehearse guide hung 30 s and more
    in 2 of 3 runs (the embedded server's stop waited on a reply the session had given up on).
    """
    home = tmp_path / "home"
    result = run_cli(home, "talk", "--text", "--no-speak", "--guide", guide,
                     stdin=GUIDE_LINES[guide] + "end session\nskip\n", timeout=40)
    assert result.returncode == 0, result.stderr
    assert "saved" in result.stdout and len(sessions_json(home)) == 1
