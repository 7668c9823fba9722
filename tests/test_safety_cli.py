"""`voicereflect safety` in a subprocess, as a person (or an evaluator) would run it, with the real judge;
and the tiers in real `talk --text` sessions."""

from __future__ import annotations

import json

import pytest

from tests.cli_helpers import run_cli, session_json, sessions_json


def test_check_a_file_prints_one_json_object_per_line(tmp_path):
    lines = tmp_path / "lines.txt"
    lines.write_text("we had a lovely walk by the river\n\nI have the pills and I'm taking them tonight\n")
    result = run_cli(tmp_path / "home", "safety", "check", "--file", str(lines), "--json")
    assert result.returncode == 0, result.stderr
    rows = [json.loads(row) for row in result.stdout.splitlines()]
    assert [r["line"] for r in rows] == [1, 2]  # empty lines are skipped, numbering follows what was checked
    assert rows[0]["level"] == "none" and rows[0]["risk"] is False and rows[0]["reasons"] == []
    assert rows[1]["level"] == "crisis" and rows[1]["risk"] is True and rows[1]["reasons"]


def test_check_a_session_keeps_the_last_turns_in_view(tmp_path):
    lines = tmp_path / "session.txt"
    lines.write_text("I had lunch with my sister\nwork was busy\nthe bus was late\n")
    result = run_cli(tmp_path / "home", "safety", "check", "--file", str(lines), "--session", "--json")
    assert result.returncode == 0, result.stderr
    assert [json.loads(row)["level"] for row in result.stdout.splitlines()] == ["none", "none", "none"]


def test_check_reads_standard_input(tmp_path):
    result = run_cli(tmp_path / "home", "safety", "check", "--file", "-", stdin="I want to kill myself\n")
    assert result.returncode == 0 and result.stdout.split("\t")[:2] == ["1", "concern"], result.stdout


@pytest.mark.parametrize("content,message", [(b"", "no lines to check"), (b"\n  \n", "no lines to check"),
                                             (b"\xff\xfe\x00bad", "not UTF-8")])
def test_an_empty_or_unreadable_file_is_one_line_and_exit_1(tmp_path, content, message):
    path = tmp_path / "in.txt"
    path.write_bytes(content)
    result = run_cli(tmp_path / "home", "safety", "check", "--file", str(path), "--json")
    assert result.returncode == 1 and message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and result.stdout == ""


def test_a_missing_file_or_no_input_is_one_line_and_exit_1(tmp_path):
    result = run_cli(tmp_path / "home", "safety", "check", "--file", str(tmp_path / "missing.txt"))
    assert result.returncode == 1 and "Cannot read" in result.stderr and "Traceback" not in result.stderr
    result = run_cli(tmp_path / "home", "safety", "check")
    assert result.returncode == 1 and "Give either TEXT or --file" in result.stderr


def test_check_json_of_one_text(tmp_path):
    data = json.loads(run_cli(tmp_path, "safety", "check", "--json", "I could kill for a coffee").stdout)
    assert data["level"] == "none" and data["risk"] is False
    data = json.loads(run_cli(tmp_path, "safety", "check", "--json", "I want to end my life").stdout)
    assert data["risk"] is True and data["level"] in ("concern", "crisis") and data["resources"]["locale"] == "US"


def test_plan_is_written_section_by_section_and_shown(tmp_path):
    home = tmp_path / "home"
    assert "no safety plan yet" in run_cli(home, "safety", "plan").stdout
    answers = "not sleeping\npulling away from friends\n\nwalk the dog\n\n\ncall my sister Ana\n\n"
    result = run_cli(home, "safety", "plan", "edit", stdin=answers)
    assert result.returncode == 0, result.stderr
    shown = run_cli(home, "safety", "plan").stdout
    assert "not sleeping" in shown and "walk the dog" in shown and "call my sister Ana" in shown
    assert "988" in shown  # crisis lines are added under professionals
    data = json.loads(run_cli(home, "safety", "plan", "--json").stdout)
    assert data["entries"]["warning_signs"] == ["not sleeping", "pulling away from friends"]
    assert data["entries"]["ask_for_help"] == ["call my sister Ana"]
    cleared = run_cli(home, "safety", "plan", "edit", "--section", "on_my_own", stdin="-\n\n")
    assert cleared.returncode == 0 and "on_my_own" not in json.loads(run_cli(home, "safety", "plan", "--json").stdout)["entries"]
    wrong = run_cli(home, "safety", "plan", "edit", "--section", "nope", stdin="")
    assert wrong.returncode == 1 and "There is no section 'nope'" in wrong.stderr


def test_an_encrypted_plan_is_not_readable_on_disk(tmp_path):
    home = tmp_path / "home"
    config = tmp_path / "config.toml"
    config.write_text("[storage]\nencrypt = true\n")
    env = {"VOICEREFLECT_PASSPHRASE": "correct horse battery"}
    result = run_cli(home, "--config", str(config), "safety", "plan", "edit", stdin="my secret sign\n\n", **env)
    assert result.returncode == 0, result.stderr
    assert b"my secret sign" not in (home / "plans" / "safety-plan.json").read_bytes()
    assert "my secret sign" in run_cli(home, "--config", str(config), "safety", "plan", **env).stdout


def _text_session(tmp_path, lines: list[str], plan: str = "") -> tuple[object, list[dict]]:
    home = tmp_path / "home"
    config = tmp_path / "config.toml"
    config.write_text('[llm]\nbase_url = "http://127.0.0.1:9/v1"\nfirst_token_timeout_s = 1.0\n')
    if plan:
        assert run_cli(home, "safety", "plan", "edit", stdin=plan).returncode == 0
    result = run_cli(home, "--config", str(config), "talk", "--text", "--no-speak", stdin="\n".join(lines) + "\n")
    assert result.returncode == 0, result.stderr
    return result, session_json(home, sessions_json(home)[0]["id"])["turns"]


def _safety_events(turns: list[dict]) -> list[dict]:
    return [e for t in turns for e in t["events"] if e["type"] == "safety"]


def test_talk_a_plan_gets_the_crisis_message_at_once(tmp_path):
    result, turns = _text_session(tmp_path, ["I've saved up my pills and I'm taking them all tonight"])
    assert "911" in result.stdout and "988" in result.stdout and "continue, pause, or end" in result.stdout
    assert [e["level"] for e in _safety_events(turns)] == ["crisis"]


def test_talk_a_passive_wish_is_asked_about_and_yes_shows_the_plan(tmp_path):
    result, turns = _text_session(tmp_path, ["Lately I sort of wish I could just go to sleep and not wake up.",
                                             "yes, sometimes"], plan="\nlistening to music\n\n")
    out = result.stdout
    assert "are you having thoughts of ending your life" in out
    assert "listening to music" in out and "988" in out and out.index("listening to music") < out.rindex("988")
    levels = [e["level"] for e in _safety_events(turns)]
    assert levels[0] in ("check_in", "concern") and levels[-1] == "concern"
    assert [t["text"] for t in turns if t["role"] == "user"][:2] == [
        "Lately I sort of wish I could just go to sleep and not wake up.", "yes, sometimes"]


def test_talk_no_to_the_direct_question_goes_on_with_the_session(tmp_path):
    result, turns = _text_session(tmp_path, ["Lately I sort of wish I could just go to sleep and not wake up.",
                                             "No, I'm not.", "My sister said I was being dramatic at dinner."])
    assert "Thank you for answering" in result.stdout
    events = _safety_events(turns)
    assert events[-1].get("answer") == "no"
    last = turns[-1]
    assert last["role"] == "assistant" and last["source"] in ("scripted", "llm") and "988" not in last["text"]
