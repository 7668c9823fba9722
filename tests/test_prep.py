"""The session-prep brief: real TinyDB files, the real renderers, pdftotext on the real PDF, the CLI in a subprocess."""

from __future__ import annotations

import base64
import json
import re
import shutil
import stat
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from tests.cli_helpers import REPO, cli_env, run_cli
from voicereflect.cli import cli
from voicereflect.errors import VoiceReflectError
from voicereflect.prep import build_brief, pdf_bytes, render_html, render_markdown, render_pdf, write_new
from voicereflect.prep_command import parse_since
from voicereflect.store import TinyDBSessionStore
from voicereflect.types import SessionNotes, Turn

ATTEMPT = {"type": "rehearsal_attempt", "stage": "attempt"}
WISH = {"type": "session_wish", "stage": "want"}
FIRST_ATTEMPT = "Sorry, I just think maybe you could call Mum a bit more?"
LAST_ATTEMPT = "I need you to share calling Mum with me. I can't carry it on my own any more."
FLAGGED = "I talked to Marguerite about it and felt ashamed that I always say yes."
WISH_TEXT = "I want to work out how to say no at work without feeling guilty for days."
OLD_WORDS = "The funeral plans for my grandad took all week."
LLM_RECAP = "The person appears to struggle with boundaries in the family system."
WORDS_RECAP = "Talked about my sister, Mum and the weekly phone calls."
ASSISTANT = "What stood out most for you in that moment?"  # every reply; must never reach the brief


def add_session(home: Path, guide: str, turns: list, *, days_ago: float, notes: SessionNotes | None = None,
                status: str = "complete") -> str:
    """A saved session: ``turns`` are (text, events) for the person, each followed by the same reply."""
    store = TinyDBSessionStore(home)
    session_id = store.start_session(guide)
    for text, events in turns:
        store.add_turn(session_id, Turn(role="user", text=text, events=tuple(events)))
        store.add_turn(session_id, Turn(role="assistant", text=ASSISTANT))
    store.end_session(session_id, status)
    if notes:
        store.annotate(session_id, notes)
    path = store.session_path(session_id)  # backdate: the file is the truth, then reindex
    data = json.loads(path.read_text())
    started = datetime.now(timezone.utc) - timedelta(days=days_ago)
    data["session"]["1"]["started_at"] = started.isoformat(timespec="milliseconds")
    path.write_text(json.dumps(data))
    store.rebuild_index()
    return session_id


def build_journal(home: Path) -> None:
    """A week of invented sessions, plus one three weeks old (outside the default --since 7d)."""
    add_session(home, "open", [(OLD_WORDS, ())], days_ago=21, notes=SessionNotes(flagged=(0,), rating=8))
    add_session(home, "open", [
        ("Work has been hard since the move. My boss moved the deadline again and I felt anxious all evening.", ()),
        (FLAGGED, ()),
    ], days_ago=6.2, notes=SessionNotes(flagged=(2,), rating=7))
    add_session(home, "conversation", [
        ("I keep being the one who phones Mum every night, and my sister never does.", ()),
        ("I felt angry and then guilty about being angry.", ()),
    ], days_ago=5.1, notes=SessionNotes(flagged=(1, 2), rating=6, recap=LLM_RECAP, recap_source="llm"))
    add_session(home, "rehearse", [(FIRST_ATTEMPT, [ATTEMPT]), (LAST_ATTEMPT, [ATTEMPT]),
                                   ("It feels scary but right to say it.", ())],
                days_ago=4.0, notes=SessionNotes(rating=5, recap=WORDS_RECAP, recap_source="words"))
    add_session(home, "prep", [
        ("I slept badly most nights and kept thinking about what Marguerite said.", ()),
        ("Mostly the work thing, and my sister.", ()),
        (WISH_TEXT, [WISH]),
    ], days_ago=2.0, notes=SessionNotes(rating=4))
    add_session(home, "open", [("Couldn't sleep again. Tired and a bit lonely tonight.", ())],
                days_ago=1.0, status="interrupted", notes=SessionNotes(rating=6))


@pytest.fixture
def journal(home):
    build_journal(home)
    store = TinyDBSessionStore(home)
    return [store.get_session(s.id) for s in store.list_sessions()]


def week_ago() -> datetime:
    return parse_since("7d")


# -- the brief ---------------------------------------------------------------------------


def test_markdown_keeps_the_persons_words_and_only_theirs(journal):
    text = render_markdown(build_brief(journal, week_ago()))
    assert "Notes for my next therapy session" in text and "Not a clinical document" in text
    assert FLAGGED in text and "guilty about being angry" in text
    assert LAST_ATTEMPT in text and FIRST_ATTEMPT not in text  # the rehearsed line is the last attempt
    assert WISH_TEXT in text and WORDS_RECAP in text
    assert ASSISTANT not in text and LLM_RECAP not in text  # no assistant turn, no model-written recap
    assert OLD_WORDS not in text  # older than --since
    assert "(interrupted)" in text and "5 sessions" in text
    assert re.search(r"- \w{3} \d+ \w{3}: 7/10", text)  # intensity as a plain list
    assert "Marguerite" in text and "work" in text  # recurring people and themes


def test_flagged_index_of_an_assistant_turn_is_never_shown(home):
    add_session(home, "open", [("Only my words here.", ())], days_ago=1, notes=SessionNotes(flagged=(1, 9)))
    store = TinyDBSessionStore(home)
    brief = build_brief([store.get_session(s.id) for s in store.list_sessions()], week_ago())
    assert brief.flagged == () and ASSISTANT not in render_markdown(brief)


def test_empty_period_says_so_in_every_format(journal, tmp_path):
    since = datetime.now().astimezone() - timedelta(hours=1)
    brief = build_brief(journal, since)
    line = f"No sessions since {since:%a} {since.day} {since:%b %Y}."
    assert line in render_markdown(brief) and line in render_html(brief)
    assert "Flagged moments" not in render_markdown(brief)
    assert line in pdf_text(render_pdf(brief, tmp_path / "empty.pdf"))


def test_no_ratings_means_no_intensity_section(home):
    add_session(home, "open", [("Just a short check-in.", ())], days_ago=1)
    store = TinyDBSessionStore(home)
    brief = build_brief([store.get_session(s.id) for s in store.list_sessions()], week_ago())
    assert "Intensity" not in render_markdown(brief) and "data:image/png" not in render_html(brief)


def test_html_is_one_self_contained_file_with_the_chart(journal):
    page = render_html(build_brief(journal, week_ago()))
    assert not re.search(r"https?://", page), "no external references"
    assert "<link" not in page and "<script" not in page and "@import" not in page
    assert "@media print" in page
    png = re.search(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert png and base64.b64decode(png.group(1)).startswith(b"\x89PNG\r\n\x1a\n")
    assert "I can&#x27;t carry it" in page and ASSISTANT not in page  # escaped, and the person's words only


def test_html_escapes_the_persons_words(home):
    add_session(home, "open", [("<script>alert(1)</script> & more", ())], days_ago=1, notes=SessionNotes(flagged=(0,)))
    store = TinyDBSessionStore(home)
    page = render_html(build_brief([store.get_session(s.id) for s in store.list_sessions()], week_ago()))
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in page


# -- PDF ---------------------------------------------------------------------------------


def pdf_text(path: Path) -> str:
    return subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True, check=True).stdout


def pdf_pages(path: Path) -> int:
    info = subprocess.run(["pdfinfo", str(path)], capture_output=True, text=True, check=True).stdout
    return int(re.search(r"^Pages:\s+(\d+)", info, re.MULTILINE).group(1))


needs_poppler = pytest.mark.skipif(shutil.which("pdftotext") is None, reason="poppler-utils (pdftotext) not installed")


@needs_poppler
def test_pdf_carries_the_flagged_words_and_rehearsed_line_on_one_or_two_pages(journal, tmp_path):
    path = render_pdf(build_brief(journal, week_ago()), tmp_path / "brief.pdf")
    text = " ".join(pdf_text(path).split())
    assert FLAGGED in text and LAST_ATTEMPT in text and WISH_TEXT in text
    assert FIRST_ATTEMPT not in text and ASSISTANT not in text
    assert "Intensity over time" in text and "not a clinical document" in text
    assert 1 <= pdf_pages(path) <= 2
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@needs_poppler
def test_pdf_prints_any_script_dejavu_covers_and_breaks_pages_cleanly(home, tmp_path):
    words = "Zo\u00eb said \u00e7a va, \u0391\u03b8\u03ae\u03bd\u03b1, \u041c\u043e\u0441\u043a\u0432\u0430 \u2013 and a lone \ud800 surrogate."
    for day in range(12):
        add_session(home, "open", [(words + f" Day {day}. " + "More words here. " * 30, ())], days_ago=day / 2 + 0.1,
                    notes=SessionNotes(flagged=(0,), rating=day % 10 + 1))
    store = TinyDBSessionStore(home)
    path = render_pdf(build_brief([store.get_session(s.id) for s in store.list_sessions()], week_ago()),
                      tmp_path / "long.pdf")
    text = pdf_text(path)
    assert "Zo\u00eb said \u00e7a va, \u0391\u03b8\u03ae\u03bd\u03b1, \u041c\u043e\u0441\u043a\u0432\u0430" in text
    assert pdf_pages(path) >= 2 and "page 2 of" in text


def test_write_new_refuses_to_overwrite(tmp_path):
    target = tmp_path / "brief.md"
    target.write_text("mine")
    with pytest.raises(VoiceReflectError, match="already exists") as caught:
        write_new(target, b"new")
    assert "\n" not in str(caught.value) and target.read_text() == "mine"


# -- --since -------------------------------------------------------------------------------


def test_parse_since_accepts_days_weeks_and_dates():
    now = datetime(2026, 3, 10, 15, 0, tzinfo=timezone.utc)
    assert parse_since("7d", now) == now - timedelta(days=7)
    assert parse_since(" 2W ", now) == now - timedelta(days=14)
    since = parse_since("2026-03-01", now)
    assert since.tzinfo is not None and (since.year, since.month, since.day, since.hour) == (2026, 3, 1, 0)


@pytest.mark.parametrize("text", ["yesterday", "7", "0d", "-3d", "2026-13-01", "1.5w", "", "2999-01-01"])
def test_parse_since_refuses_anything_else_in_one_line(text):
    with pytest.raises(VoiceReflectError) as caught:
        parse_since(text, datetime(2026, 3, 10, tzinfo=timezone.utc))
    assert "\n" not in str(caught.value) and ("7d" in str(caught.value))


def test_since_filters_sessions(journal):
    assert OLD_WORDS not in render_markdown(build_brief(journal, parse_since("7d")))
    month = render_markdown(build_brief(journal, parse_since("4w")))
    assert OLD_WORDS in month and "6 sessions" in month
    assert "6 sessions" in render_markdown(build_brief(journal, None))


# -- the commands, through the real main() -----------------------------------------------

# Registers the commands the way cli.py will (if it has not yet), then runs the real main().
SHIM = ("from voicereflect.cli import cli, main\n"
        "from voicereflect.prep_command import patterns, prep\n"
        "for command in (prep, patterns):\n"
        "    cli.commands.get(command.name) or cli.add_command(command)\n"
        "main()\n")


def run_voicereflect(home: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = cli_env(home, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-c", SHIM, *args], capture_output=True, text=True, timeout=120,
                          env=env, cwd=cwd, stdin=subprocess.DEVNULL)


def test_prep_command_prints_markdown_and_writes_files_0600_once(journal, home, tmp_path):
    shown = run_voicereflect(home, tmp_path, "prep")
    assert shown.returncode == 0, shown.stderr
    assert LAST_ATTEMPT in shown.stdout and OLD_WORDS not in shown.stdout and ASSISTANT not in shown.stdout
    wider = run_voicereflect(home, tmp_path, "prep", "--since", "30d")
    assert OLD_WORDS in wider.stdout

    made = run_voicereflect(home, tmp_path, "prep", "--format", "pdf")
    assert made.returncode == 0, made.stderr
    path = Path(made.stdout.strip())
    assert path.parent == tmp_path and path.name.startswith("voicereflect-prep-") and path.suffix == ".pdf"
    assert path.read_bytes().startswith(b"%PDF") and stat.S_IMODE(path.stat().st_mode) == 0o600

    out = tmp_path / "brief.html"
    first = run_voicereflect(home, tmp_path, "prep", "--format", "html", "--out", str(out))
    assert first.returncode == 0 and first.stdout.strip() == str(out)
    assert stat.S_IMODE(out.stat().st_mode) == 0o600 and "data:image/png;base64," in out.read_text()
    before = out.read_bytes()
    again = run_voicereflect(home, tmp_path, "prep", "--format", "html", "--out", str(out))
    assert again.returncode == 1 and len(again.stderr.strip().splitlines()) == 1
    assert "already exists" in again.stderr and out.read_bytes() == before


def test_bad_since_is_one_line_and_exit_1(home, tmp_path):
    for command in ("prep", "patterns"):
        result = run_voicereflect(home, tmp_path, command, "--since", "last tuesday")
        assert result.returncode == 1 and "Traceback" not in result.stderr
        assert result.stderr.strip().splitlines() == [
            "voicereflect: --since 'last tuesday' is not a period voicereflect understands. "
            "Use days or weeks back (7d, 2w) or a date (YYYY-MM-DD)."]


def test_patterns_command_json_and_text(journal, home, tmp_path):
    result = run_voicereflect(home, tmp_path, "patterns", "--since", "7d", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    people = {p["name"]: p for p in data["people"]}
    assert data["sessions"] == 5 and people["Marguerite"]["total"] == 2 and people["Marguerite"]["sessions"] == 2
    assert "grandparent" not in people  # the old session is outside --since
    text = run_voicereflect(home, tmp_path, "patterns").stdout
    assert "Marguerite: 2 times in 2 sessions" in text and "grandparent" in text  # default: 8 weeks


def test_importing_the_commands_stays_light():
    code = "import sys, voicereflect.prep_command; print(sorted({'matplotlib', 'fpdf', 'numpy'} & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert result.stdout.strip() == "[]"


@pytest.mark.skipif("prep" not in cli.commands, reason="cli.py does not register prep yet: cli.add_command(prep)")
def test_the_installed_command_runs_prep_and_patterns(journal, home):
    assert run_cli(home, "prep", "--help").returncode == 0
    shown = run_cli(home, "prep")
    assert shown.returncode == 0 and LAST_ATTEMPT in shown.stdout and ASSISTANT not in shown.stdout
    assert json.loads(run_cli(home, "patterns", "--json").stdout)["sessions"] == 6
