"""Offline proof: a whole text session on the embedded defaults inside a network namespace with only loopback.

``unshare -n`` gives the command a network namespace of its own: no interfaces but ``lo``
(which starts down, so it is brought up with ``ip``). If anything in the session needed
the network (a model download, a remote API, a DNS lookup), it would fail here.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from functools import lru_cache

import pytest

from tests.cli_helpers import REPO, cli_env, session_json, sessions_json
from voicereflect.replies import reply_problem

LOOPBACK_UP = "ip link set lo up && exec \"$@\""


@lru_cache(maxsize=1)
def unshare_prefix() -> tuple[list[str] | None, str]:
    """The command prefix that runs a program in a loopback-only network namespace, or (None, why not)."""
    if shutil.which("unshare") is None:
        return None, "`unshare` (util-linux) is not installed"
    if shutil.which("ip") is None:
        return None, "`ip` (iproute2) is not installed, so loopback cannot be brought up inside the namespace"
    reasons = []
    for flags in (["-n"], ["-rn"]):
        prefix = ["unshare", *flags, "sh", "-c", LOOPBACK_UP, "sh"]
        try:
            probe = subprocess.run([*prefix, "true"], capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.SubprocessError) as exc:
            reasons.append(f"`unshare {' '.join(flags)}`: {exc}")
            continue
        if probe.returncode == 0:
            return prefix, ""
        reasons.append(f"`unshare {' '.join(flags)}` failed: {probe.stderr.strip() or probe.returncode}")
    return None, "; ".join(reasons)


@pytest.fixture
def offline():
    prefix, why = unshare_prefix()
    if prefix is None:
        pytest.skip(f"cannot make a network namespace: {why}")
    return prefix


def test_namespace_has_only_loopback(offline):
    links = subprocess.run([*offline, "ip", "-o", "link", "show"], capture_output=True, text=True, timeout=30)
    assert links.returncode == 0, links.stderr
    names = [line.split(":")[1].strip() for line in links.stdout.splitlines()]
    assert names == ["lo"] and "UP" in links.stdout
    # Nothing outside is reachable, whatever addresses the host has.
    probe = "import socket; socket.create_connection(('192.0.2.1', 80), timeout=2)"
    result = subprocess.run([*offline, sys.executable, "-c", probe], capture_output=True, text=True, timeout=30)
    assert result.returncode != 0 and "unreachable" in result.stderr.lower()


@pytest.mark.slow
def test_text_session_on_embedded_defaults_works_with_no_network(tmp_path, offline):
    home = tmp_path / "home"
    lines = ["I had an argument with my sister about our mother.", "I keep replaying what she said."]
    # OPENAI_BASE_URL must change nothing: the embedded server's URL is passed to the client explicitly.
    env = cli_env(home, OPENAI_BASE_URL="http://example.invalid/v1")
    result = subprocess.run(
        [*offline, sys.executable, "-m", "voicereflect", "talk", "--text", "--no-speak", "--max-turns", "2"],
        input="\n".join(lines) + "\n", capture_output=True, text=True, timeout=300, env=env, cwd=REPO,
    )
    assert result.returncode == 0, result.stderr
    assert "embedded llama.cpp" in result.stderr and "127.0.0.1" in result.stderr
    assert "can't reach the language model" not in result.stdout + result.stderr
    assert "example.invalid" not in result.stdout + result.stderr
    replies = [line for line in result.stdout.splitlines() if line.startswith("voicereflect: ")]
    assert len(replies) == 3, result.stdout  # greeting + one reply per line
    for line in lines:
        assert f"you: {line}" in result.stdout

    [row] = sessions_json(home)
    assert row["status"] == "complete"
    turns = session_json(home, row["id"])["turns"]
    assert [t["text"] for t in turns if t["role"] == "user"] == lines
    for turn in turns[2::2]:
        assert reply_problem(turn["text"]) is None
