"""The whole "walk into your next session prepared" journey on real parts.

Three sessions are typed through the real `voicereflect talk --text` on the embedded
LLM (a flagged moment, a rehearsal, a prep session), then `sessions search` finds a name
said mid-sentence and `prep` writes md, html and pdf that carry the person's flagged
words and their last rehearsed line (the pdf read back with pdftotext).
"""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.cli_helpers import run_cli, session_json, sessions_json

pytestmark = pytest.mark.slow

FLAGGED = "I keep thinking about what Marguerite said at dinner."
FIRST_ATTEMPT = "I want to tell my therapist that I feel stuck."
REHEARSED = "I feel stuck, and I want us to talk about it."
WISH = "I want to leave with one small step."


@pytest.fixture(scope="module")
def journal(tmp_path_factory):
    home = tmp_path_factory.mktemp("journey") / "home"
    sessions = [
        ("open", [FLAGGED, "flag that", "end session", "6"]),
        ("rehearse", [FIRST_ATTEMPT, REHEARSED, "end session", "four"]),
        ("prep", ["Work was hard this week.", "My sister visited on Sunday.", "The argument with my sister matters most.",
                  WISH, "end session", "skip"]),
    ]
    for guide, lines in sessions:
        result = run_cli(home, "talk", "--text", "--no-speak", "--guide", guide, stdin="\n".join(lines) + "\n")
        assert result.returncode == 0, result.stderr
    return home


def test_the_sessions_carry_the_flag_the_ratings_and_a_recap(journal):
    rows = sessions_json(journal)
    assert [r["guide"] for r in rows] == ["open", "rehearse", "prep"]
    assert [r["rating"] for r in rows] == [6, 4, None] and [r["flagged"] for r in rows] == [1, 0, 0]
    first = session_json(journal, rows[0]["id"])
    assert first["turns"][first["notes"]["flagged"][0]]["text"] == FLAGGED
    assert all(session_json(journal, r["id"])["notes"]["recap"] for r in rows)


def test_search_finds_the_name_the_person_said(journal):
    found = json.loads(run_cli(journal, "sessions", "search", "Marguerite", "--json").stdout)
    assert any(m["role"] == "user" and m["text"] == FLAGGED for m in found)


@pytest.mark.parametrize("fmt", ["md", "html", "pdf"])
def test_prep_brief_carries_the_flagged_words_and_the_rehearsed_line(journal, tmp_path, fmt):
    out = tmp_path / f"brief.{fmt}"
    result = run_cli(journal, "prep", "--since", "7d", "--format", fmt, "--out", str(out))
    assert result.returncode == 0, result.stderr
    if fmt == "pdf":
        text = subprocess.run(["pdftotext", "-layout", str(out), "-"], capture_output=True, text=True, check=True).stdout
    else:
        text = out.read_text()
    flat = " ".join(text.replace("\u2019", "'").split())
    assert "Marguerite said at dinner" in flat
    assert "I feel stuck, and I want us to talk about it" in flat
    assert "one small step" in flat
    rehearsed = flat.split("Rehearsed lines", 1)[1].split("What I want", 1)[0]
    assert "I feel stuck, and I want us to talk about it" in rehearsed
    assert "tell my therapist" not in rehearsed  # only the last attempt is the rehearsed line
    if fmt == "html":
        assert "http://" not in text and "https://" not in text
