"""Export, delete and recording retention: real TinyDB files, and the real CLI in subprocesses."""

from __future__ import annotations

import json
import os
import pty
import stat
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from tests.cli_helpers import REPO, cli_env, run_cli, session_json, sessions_json
from voicereflect.manage import apply_audio_retention
from voicereflect.store import TinyDBSessionStore
from voicereflect.types import AudioClip, Turn

TEXTS = [
    "I had an argument with my sister Maya about our mother.",
    "  leading and trailing spaces  ",
    "line one\nline two\r\nline three",
    "emoji 😀👍🏽 and a family 👨‍👩‍👧, 中文 العربية, e\u0301 vs \u00e9",
    'quote " backslash \\ tab \t nul \x00 *stars* _under_ # hash',
    "a lone surrogate \ud800 survives",
    "",
]
SAFETY = {"type": "safety", "at": "2026-01-01T00:00:00.000+00:00", "category": "suicide", "severity": "high"}


def clip(seconds: float = 0.1, hz: float = 220.0) -> AudioClip:
    t = np.arange(int(16_000 * seconds)) / 16_000
    return AudioClip(samples=(0.5 * np.sin(2 * np.pi * hz * t)).astype(np.float32))


def make_session(home: Path, texts: list[str], *, guide: str = "open", safety_on: int | None = None) -> str:
    """A finished session: each text is a recorded user turn followed by a reply."""
    store = TinyDBSessionStore(home)
    session_id = store.start_session(guide)
    for number, text in enumerate(texts):
        audio = store.save_audio(session_id, clip(hz=200.0 + number))
        events = (SAFETY,) if number == safety_on else ()
        store.add_turn(session_id, Turn(role="user", text=text, source="voice", audio=audio, events=events))
        store.add_turn(session_id, Turn(role="assistant", text=f"What stands out in that, part {number}?"))
    store.end_session(session_id)
    return session_id


def age_session(home: Path, session_id: str, days: int) -> None:
    """Make a session look as if it started ``days`` days ago (the file is the truth; reindex)."""
    store = TinyDBSessionStore(home)
    path = store.session_path(session_id)
    data = json.loads(path.read_text())
    started = datetime.now(timezone.utc) - timedelta(days=days)
    data["session"]["1"]["started_at"] = started.isoformat(timespec="milliseconds")
    path.write_text(json.dumps(data))
    store.rebuild_index()


def wavs(home: Path, session_id: str) -> list[Path]:
    return sorted((home / "audio" / session_id).glob("*.wav"))


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


# -- export -------------------------------------------------------------------------


def test_export_json_round_trips_every_turn_and_copies_audio_0600(home, tmp_path):
    first = make_session(home, TEXTS[:4], safety_on=1)
    second = make_session(home, TEXTS[4:], guide="prep")
    out = tmp_path / "export"
    result = run_cli(home, "export", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines() == [f"Exported 2 sessions to {out} (7 recordings copied)."]

    exported = json.loads((out / "sessions.json").read_text(encoding="utf-8"))
    store = TinyDBSessionStore(home)
    assert exported == [store.get_session(first).to_dict(), store.get_session(second).to_dict()]
    assert [t["text"] for s in exported for t in s["turns"] if t["role"] == "user"] == TEXTS
    assert exported[0]["turns"][2]["events"] == [SAFETY]
    assert mode(out) == 0o700 and mode(out / "sessions.json") == 0o600
    copies = 0
    for session in exported:
        for turn in session["turns"]:
            if turn["audio"]:
                copy = out / turn["audio"]
                assert copy.read_bytes() == (home / turn["audio"]).read_bytes()
                assert mode(copy) == 0o600 and mode(copy.parent) == 0o700
                copies += 1
    assert copies == len(TEXTS) == len(list(out.rglob("*.wav")))


def test_export_json_has_the_shape_of_sessions_show(home, tmp_path):
    session_id = make_session(home, ["plain words", "more plain words"])
    assert run_cli(home, "export", "--out", str(tmp_path / "e")).returncode == 0
    exported = json.loads((tmp_path / "e" / "sessions.json").read_text())
    assert exported == [session_json(home, session_id)]


def test_export_named_sessions_only(home, tmp_path):
    make_session(home, ["not this one"])
    wanted = make_session(home, ["only this one"])
    result = run_cli(home, "export", wanted, wanted, "--out", str(tmp_path / "e"))
    assert result.returncode == 0, result.stderr
    exported = json.loads((tmp_path / "e" / "sessions.json").read_text())
    assert [s["id"] for s in exported] == [wanted]
    assert [p.parent.name for p in (tmp_path / "e").rglob("*.wav")] == [wanted]


def test_export_markdown_contains_the_transcript(home, tmp_path):
    texts = ["I keep replaying what she said.", "Mostly that I wasn't heard."]
    session_id = make_session(home, texts, guide="conversation", safety_on=1)
    out = tmp_path / "notes.md"
    result = run_cli(home, "export", "--format", "markdown", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"Exported 1 session to {out}."
    text = out.read_text(encoding="utf-8")
    assert mode(out) == 0o600
    assert f"## Session {session_id}" in text
    assert "Guide: conversation" in text and "Status: complete" in text
    date = TinyDBSessionStore(home).get_session(session_id).summary.started_at[:10]
    assert f"Date: {date}" in text
    expected = ["**You:** I keep replaying what she said.", "**voicereflect:** What stands out in that, part 0?",
                "**You:** Mostly that I wasn't heard.", "**voicereflect:** What stands out in that, part 1?"]
    positions = [text.index(line) for line in expected]
    assert positions == sorted(positions)
    safety_note = text.index("> Safety: crisis resources were shown (suicide, high).")
    assert positions[2] < safety_note < positions[3]
    assert text.count("Safety:") == 1


@pytest.mark.parametrize("fmt,name", [("json", "taken"), ("markdown", "taken.md")])
def test_export_refuses_to_overwrite(home, tmp_path, fmt, name):
    make_session(home, ["words worth keeping"])
    out = tmp_path / name
    out.write_text("mine, not yours")
    result = run_cli(home, "export", "--format", fmt, "--out", str(out))
    assert result.returncode == 1
    assert str(out) in one_line(result.stderr) and "already exists" in result.stderr
    assert out.read_text() == "mine, not yours" and result.stdout == ""


def test_export_default_name_is_dated_in_the_current_folder(home, tmp_path):
    make_session(home, ["hello"])
    result = subprocess.run([sys.executable, "-m", "voicereflect", "export", "--format", "markdown"],
                            capture_output=True, text=True, cwd=tmp_path, env=cli_env(home),
                            stdin=subprocess.DEVNULL, timeout=120)
    assert result.returncode == 0, result.stderr
    written = list(tmp_path.glob("voicereflect-export-*.md"))
    assert len(written) == 1 and len(written[0].name) == len("voicereflect-export-20260101-120000.md")
    assert "**You:** hello" in written[0].read_text()


def test_export_skips_and_counts_missing_recordings(home, tmp_path):
    session_id = make_session(home, ["one", "two", "three"])
    wavs(home, session_id)[1].unlink()
    result = run_cli(home, "export", "--out", str(tmp_path / "e"))
    assert result.returncode == 0, result.stderr
    assert "2 recordings copied; 1 no longer on disk, skipped" in result.stdout
    assert len(list((tmp_path / "e").rglob("*.wav"))) == 2


def test_export_of_an_unknown_id_writes_nothing(home, tmp_path):
    known = make_session(home, ["hello"])
    result = run_cli(home, "export", known, "20990101-000000-abcd", "--out", str(tmp_path / "e"))
    assert result.returncode == 1 and "20990101-000000-abcd" in one_line(result.stderr)
    assert not (tmp_path / "e").exists()


# -- delete -------------------------------------------------------------------------


def test_delete_with_yes_removes_every_trace_from_disk(home):
    keep = make_session(home, ["keepsake-words stay here"])
    doomed = make_session(home, ["zebra-marker private sentence", "zebra-marker another one"])
    assert any(b"zebra-marker" in p.read_bytes() for p in home.rglob("*") if p.is_file())
    result = run_cli(home, "delete", doomed, "--yes")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "Deleted 1 session (4 turns)."
    assert not any(b"zebra-marker" in p.read_bytes() for p in home.rglob("*") if p.is_file())
    assert [p for p in home.rglob("*") if doomed in str(p)] == []
    assert [s["id"] for s in sessions_json(home)] == [keep]
    assert session_json(home, keep)["turns"][0]["text"] == "keepsake-words stay here"
    assert len(wavs(home, keep)) == 1


def test_delete_all_with_yes(home):
    for words in ("first", "second", "third"):
        make_session(home, [words])
    result = run_cli(home, "delete", "--all", "--yes")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "Deleted 3 sessions (6 turns)."
    assert sessions_json(home) == [] and list((home / "audio").iterdir()) == []
    assert list((home / "sessions").rglob("*.json*")) == []


def test_delete_without_yes_and_no_tty_refuses_and_deletes_nothing(home):
    session_id = make_session(home, ["still here", "and here"])
    before = session_json(home, session_id)
    for args in ([session_id], ["--all"]):
        result = run_cli(home, "delete", *args)  # stdin is /dev/null: not a terminal
        assert result.returncode == 1
        assert "--yes" in one_line(result.stderr) and "1 session (4 turns)" in result.stderr
    assert session_json(home, session_id) == before
    assert len(wavs(home, session_id)) == 2


def test_delete_of_an_unknown_id_deletes_nothing(home):
    real = make_session(home, ["real words"])
    result = run_cli(home, "delete", real, "20990101-000000-abcd", "--yes")
    assert result.returncode == 1 and "20990101-000000-abcd" in one_line(result.stderr)
    assert [s["id"] for s in sessions_json(home)] == [real]
    assert session_json(home, real)["turns"][0]["text"] == "real words" and len(wavs(home, real)) == 1


@pytest.mark.parametrize("answer,deleted", [(b"n\n", False), (b"y\n", True)])
def test_delete_at_a_terminal_asks_first(home, answer, deleted):
    session_id = make_session(home, ["ask me first"])
    controller, terminal = pty.openpty()
    try:
        process = subprocess.Popen([sys.executable, "-m", "voicereflect", "delete", session_id],
                                   stdin=terminal, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True, cwd=REPO, env=cli_env(home))
        os.write(controller, answer)
        stdout, stderr = process.communicate(timeout=120)
    finally:
        os.close(controller)
        os.close(terminal)
    assert process.returncode == 0, stderr
    assert "Delete 1 session (2 turns)" in stderr
    assert [s["id"] for s in sessions_json(home)] == ([] if deleted else [session_id])
    assert ("Deleted 1 session" in stdout) == deleted


# -- retention ----------------------------------------------------------------------


def test_prune_removes_only_old_recordings_and_keeps_the_text(home, tmp_path):
    old = make_session(home, ["an old memory", "still worth reading"])
    new = make_session(home, ["something from this week"])
    age_session(home, old, days=40)
    before = session_json(home, old)
    config = tmp_path / "config.toml"
    config.write_text("[storage]\naudio_days = 30\n")
    result = run_cli(home, "--config", str(config), "sessions", "prune")
    assert result.returncode == 0, result.stderr
    assert "Removed 2 recordings" in result.stdout
    assert wavs(home, old) == [] and len(wavs(home, new)) == 1
    assert session_json(home, old) == before
    assert [t["text"] for t in session_json(home, new)["turns"]][0] == "something from this week"
    again = run_cli(home, "--config", str(config), "sessions", "prune")
    assert "Removed 0 recordings" in again.stdout
    export = run_cli(home, "export", "--out", str(tmp_path / "e"))
    assert "1 recording copied; 2 no longer on disk, skipped" in export.stdout


def test_prune_with_audio_days_0_keeps_everything(home):
    session_id = make_session(home, ["kept forever"])
    age_session(home, session_id, days=4000)
    result = run_cli(home, "sessions", "prune")
    assert result.returncode == 0 and "nothing removed" in result.stdout
    assert len(wavs(home, session_id)) == 1


def test_apply_audio_retention_counts_files_and_respects_the_cutoff(home):
    store = TinyDBSessionStore(home)
    session_id = make_session(home, ["one", "two", "three"])
    started = datetime.fromisoformat(store.get_session(session_id).summary.started_at)
    assert apply_audio_retention(store, 0, now=started + timedelta(days=999)) == 0
    assert apply_audio_retention(store, 10, now=started + timedelta(days=9)) == 0
    assert len(wavs(home, session_id)) == 3
    assert apply_audio_retention(store, 10, now=started + timedelta(days=11)) == 3
    assert wavs(home, session_id) == []
    assert [t.text for t in store.get_session(session_id).turns if t.role == "user"] == ["one", "two", "three"]
    assert apply_audio_retention(store, 10, now=started + timedelta(days=11)) == 0
