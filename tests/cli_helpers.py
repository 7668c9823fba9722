"""Run the real `voicereflect` command in a subprocess, as a person would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def cli_env(home: Path, **extra: str) -> dict[str, str]:
    """Environment for a CLI run: its own data folder, no user config, no debug."""
    env = dict(os.environ)
    env.update({"VOICEREFLECT_HOME": str(home), "VOICEREFLECT_CONFIG": "", "XDG_CONFIG_HOME": str(home / "xdg")})
    env.pop("VOICEREFLECT_DEBUG", None)
    env.update(extra)
    return env


def run_cli(home: Path, *args: str, stdin: str | None = None, timeout: float = 240, **extra_env: str):
    """Run ``python -m voicereflect ARGS`` and return the CompletedProcess (text mode)."""
    return subprocess.run(
        [sys.executable, "-m", "voicereflect", *args], input=stdin, capture_output=True, text=True,
        timeout=timeout, env=cli_env(home, **extra_env), cwd=REPO,
        stdin=None if stdin is not None else subprocess.DEVNULL,
    )


def sessions_json(home: Path) -> list[dict]:
    """`sessions list --json`, parsed."""
    result = run_cli(home, "sessions", "list", "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def session_json(home: Path, session_id: str) -> dict:
    """`sessions show ID --json`, parsed."""
    result = run_cli(home, "sessions", "show", session_id, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)
