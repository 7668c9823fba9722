"""`talk` and `doctor` with and without audio devices, as a person would meet them."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time

import pytest

from tests.cli_helpers import REPO, cli_env, run_cli, session_json, sessions_json

NO_AUDIO = {"PULSE_SERVER": "unix:/nonexistent/pulse/native"}  # no sound server, no sound card
OFFLINE_LLM = '[llm]\nbase_url = "http://127.0.0.1:9/v1"\nfirst_token_timeout_s = 1.0\n'


def test_no_microphone_without_a_terminal_is_one_line_and_exit_1(tmp_path):
    result = run_cli(tmp_path / "home", "talk", **NO_AUDIO)
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert "--list-devices" in lines[0]


def test_no_microphone_at_a_terminal_offers_text_mode(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text(OFFLINE_LLM)
    home = tmp_path / "home"
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "voicereflect", "--config", str(config), "talk"], cwd=REPO,
        env=cli_env(home, **NO_AUDIO), stdin=follower, stdout=follower, stderr=follower, close_fds=True)
    os.close(follower)
    output = b""
    answers = [(b"Type instead", b"y\n"), (b"> ", b"I keep thinking about the meeting.\n"), (b"> ", b"end session\n"),
               (b"1 to 10", b""), (b"> ", b"seven\n")]
    deadline = time.monotonic() + 120
    while process.poll() is None and time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 0.5)
        if ready:
            try:
                output += os.read(leader, 4096)
            except OSError:
                break
        if answers and answers[0][0] in output:
            marker, reply = answers.pop(0)
            output = output.replace(marker, b"", 1)  # consume the prompt so the next one is new
            os.write(leader, reply)
    process.wait(timeout=30)
    os.close(leader)
    assert process.returncode == 0, output.decode(errors="replace")
    turns = session_json(home, sessions_json(home)[0]["id"])["turns"]
    assert [t["text"] for t in turns if t["role"] == "user"] == ["I keep thinking about the meeting.", "end session", "seven"]
    assert session_json(home, sessions_json(home)[0]["id"])["notes"]["rating"] == 7


@pytest.mark.device
def test_list_devices_shows_the_virtual_devices(virtual_audio, tmp_path):
    result = run_cli(tmp_path, "talk", "--list-devices")
    assert result.returncode == 0 and "default" in result.stdout and "(default input)" in result.stdout


@pytest.mark.slow
@pytest.mark.device
def test_doctor_passes_on_a_working_machine(virtual_audio, tmp_path):
    result = run_cli(tmp_path / "home", "doctor")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("ok ") == 5


def test_doctor_names_what_is_broken_and_how_to_fix_it(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text(OFFLINE_LLM + '[stt]\nmodel = "base.en"\n')
    result = run_cli(tmp_path / "home", "--config", str(config), "doctor", **NO_AUDIO)
    assert result.returncode == 1
    failed = [line for line in result.stdout.splitlines() if line.startswith("FAIL")]
    assert {line.split(":")[0] for line in failed} == {"FAIL  audio devices", "FAIL  speech-to-text", "FAIL  language model"}
    assert "--list-devices" in result.stdout and "models/" in result.stdout and "Cannot reach" in result.stdout
