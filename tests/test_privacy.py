"""A remote LLM: the first-use notice, the reminder, and redaction of what is sent (the store keeps real words).

The CLI tests run the real command against an OpenAI-protocol stand-in bound to a
non-loopback address of this machine, so the code takes the same path as for a real
remote host while nothing leaves the machine.
"""

from __future__ import annotations

import http.server
import ipaddress
import json
import re
import socket
import stat
import subprocess
import threading
from pathlib import Path

import pytest

from tests.cli_helpers import run_cli, session_json, sessions_json
from tests.fakes import ScriptedChat
from voicereflect.privacy import NOTICE_FILE, RedactingChat, redact, redaction_pattern, remote_notice
from voicereflect.types import Message


def non_loopback_ipv4() -> str | None:
    """An IPv4 address of this machine that is not loopback, or None."""
    candidates: list[str] = []
    try:
        candidates += subprocess.run(["hostname", "-I"], capture_output=True, text=True, timeout=5).stdout.split()
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        candidates += [info[4][0] for info in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)]
    except OSError:
        pass
    for text in candidates:
        try:
            address = ipaddress.ip_address(text)
        except ValueError:
            continue
        if address.version == 4 and not address.is_loopback and not address.is_link_local:
            return text
    return None


class RemoteRecorder(http.server.BaseHTTPRequestHandler):
    """An OpenAI-protocol stand-in that records each raw request body and whether the notice was remembered."""

    requests: list[dict] = []
    notice_path: Path | None = None

    def log_message(self, *args):
        pass

    def do_POST(self):
        raw = self.rfile.read(int(self.headers["Content-Length"])).decode("utf-8")
        notice_path = RemoteRecorder.notice_path
        RemoteRecorder.requests.append({"raw": raw, "body": json.loads(raw),
                                        "notice_remembered": bool(notice_path and notice_path.exists())})
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        for piece in ["What stands out ", "about that for you?"]:
            chunk = {"id": "1", "object": "chat.completion.chunk", "created": 0, "model": "m",
                     "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
        done = {"id": "1", "object": "chat.completion.chunk", "created": 0, "model": "m",
                "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
        self.wfile.write(f"data: {json.dumps(done)}\n\ndata: [DONE]\n\n".encode())


def serve(address: str):
    """Start a RemoteRecorder on ``address``; return (server, base_url)."""
    RemoteRecorder.requests = []
    httpd = http.server.ThreadingHTTPServer((address, 0), RemoteRecorder)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, f"http://{address}:{httpd.server_address[1]}/v1"


@pytest.fixture
def remote_url():
    address = non_loopback_ipv4()
    if address is None:
        pytest.skip("this machine has no non-loopback IPv4 address (hostname -I is empty) to bind the stand-in to")
    httpd, url = serve(address)
    yield url
    httpd.shutdown()
    httpd.server_close()


def write_config(path: Path, base_url: str, *, local_only: bool, redact_words: list[str]) -> Path:
    """Write a config that points [llm] at ``base_url`` with the given [privacy] keys."""
    words = ", ".join(json.dumps(w) for w in redact_words)
    path.write_text(f'[llm]\nbase_url = "{base_url}"\nfirst_token_timeout_s = 3.0\n\n'
                    f"[privacy]\nlocal_only = {str(local_only).lower()}\nredact = [{words}]\n")
    return path


def talk(home: Path, config: Path, line: str):
    """Run a one-reply text session with ``line`` as the person's turn."""
    return run_cli(home, "--config", str(config), "talk", "--text", "--no-speak", "--max-turns", "1",
                   stdin=line + "\n", timeout=120)


def notice_lines(stderr: str, host: str) -> list[str]:
    """The stderr lines that say text is sent to ``host`` (the notice or the reminder)."""
    return [line for line in stderr.splitlines() if host in line and "sent to" in line]


def test_remote_llm_gets_redacted_text_and_a_notice_then_a_reminder(tmp_path, remote_url):
    home = tmp_path / "home"
    host = remote_url.split("//")[1].split("/")[0]
    RemoteRecorder.notice_path = home / NOTICE_FILE
    config = write_config(tmp_path / "config.toml", remote_url, local_only=False, redact_words=["Sam"])

    first = talk(home, config, "I argued with Sam about money, and sam's brother took his side.")
    assert first.returncode == 0, first.stderr
    [notice] = notice_lines(first.stderr, host)
    assert notice.startswith("Privacy notice:") and "local_only" in notice
    assert (home / NOTICE_FILE).exists() and stat.S_IMODE((home / NOTICE_FILE).stat().st_mode) == 0o600

    requests = list(RemoteRecorder.requests)
    assert requests, "the CLI never reached the stand-in"
    assert all(r["notice_remembered"] for r in requests), "text was sent before the notice was shown"
    person = [m["content"] for r in requests for m in r["body"]["messages"] if m["role"] == "user"]
    assert any("[redacted]" in text and "money" in text for text in person)
    for r in requests:
        assert "Sam" not in r["raw"] and not re.search(r"\bsam\b", r["raw"], re.IGNORECASE), r["raw"]

    turns = session_json(home, sessions_json(home)[0]["id"])["turns"]
    assert turns[1]["text"] == "I argued with Sam about money, and sam's brother took his side."

    second = talk(home, config, "Sam called again.")
    assert second.returncode == 0, second.stderr
    [reminder] = notice_lines(second.stderr, host)
    assert reminder.startswith("Reminder:") and len(reminder) < len(notice)
    assert "Privacy notice" not in second.stderr
    later = RemoteRecorder.requests[len(requests):]
    assert later and all("Sam" not in r["raw"] for r in later)


def test_doctor_checks_a_remote_llm_without_using_up_the_first_notice(tmp_path, remote_url):
    home = tmp_path / "home"
    host = remote_url.split("//")[1].split("/")[0]
    config = write_config(tmp_path / "config.toml", remote_url, local_only=False, redact_words=[])
    doctor = run_cli(home, "--config", str(config), "doctor", timeout=120)
    assert f"Checking {host}: one test message is sent, none of your words." in doctor.stderr
    assert any("ok    language model" in line for line in doctor.stdout.splitlines()), doctor.stdout
    assert RemoteRecorder.requests and not (home / NOTICE_FILE).exists()
    first = talk(home, config, "Something happened at work.")
    [notice] = notice_lines(first.stderr, host)
    assert notice.startswith("Privacy notice:")


def test_local_only_refuses_the_remote_host_before_sending_anything(tmp_path, remote_url):
    # test_cli checks the refusal message; this adds the exit code and that nothing reached the host.
    home = tmp_path / "home"
    config = write_config(tmp_path / "config.toml", remote_url, local_only=True, redact_words=["Sam"])
    result = talk(home, config, "I argued with Sam.")
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("voicereflect:")]
    assert len(errors) == 1 and "local_only = false" in errors[0] and "Traceback" not in result.stderr
    assert RemoteRecorder.requests == []
    assert not (home / NOTICE_FILE).exists()


def test_loopback_llm_gets_no_notice_and_no_redaction(tmp_path):
    httpd, url = serve("127.0.0.1")
    try:
        home = tmp_path / "home"
        config = write_config(tmp_path / "config.toml", url, local_only=False, redact_words=["Sam"])
        result = talk(home, config, "I argued with Sam.")
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert result.returncode == 0, result.stderr
    assert "sent to" not in result.stderr and "Privacy notice" not in result.stderr
    assert not (home / NOTICE_FILE).exists()
    assert any("Sam" in r["raw"] for r in RemoteRecorder.requests)


@pytest.mark.parametrize("text,expected", [
    ("Sam said hi", "[redacted] said hi"),
    ("sam's idea, SAM!", "[redacted]'s idea, [redacted]!"),
    ("Samuel and samosas stay", "Samuel and samosas stay"),
    ("Sam  Smith in New\nYork", "[redacted] in [redacted]"),
])
def test_redaction_is_case_insensitive_whole_words_and_phrases(text, expected):
    assert redact(text, redaction_pattern(["Sam", "Sam Smith", "new york", "  "])) == expected


def test_redacting_chat_changes_only_what_the_inner_model_sees():
    inner = ScriptedChat(["What happened next?"])
    chat = RedactingChat(inner, ["Leeds"])
    messages = [Message("system", "Be kind."), Message("user", "<person>I moved to Leeds.</person>")]
    assert chat.complete(messages).strip() == "What happened next?"
    assert inner.requests == [[Message("system", "Be kind."), Message("user", "<person>I moved to [redacted].</person>")]]
    assert messages[1].content == "<person>I moved to Leeds.</person>"


def test_notice_is_full_once_per_host_then_a_reminder(tmp_path):
    first = remote_notice("https://api.example.com/v1", tmp_path, redacted_count=2)
    again = remote_notice("https://API.example.com/v1/", tmp_path)
    other = remote_notice("http://10.0.0.5:8080/v1", tmp_path)
    assert "api.example.com" in first and "2 word(s)" in first
    assert again == "Reminder: what you say in this session is sent to api.example.com."
    assert other.startswith("Privacy notice:") and "10.0.0.5:8080" in other


def test_damaged_notice_file_shows_the_full_notice_again(tmp_path):
    (tmp_path / NOTICE_FILE).write_text("{not json")
    assert remote_notice("https://api.example.com/v1", tmp_path).startswith("Privacy notice:")
    assert remote_notice("https://api.example.com/v1", tmp_path).startswith("Reminder:")
