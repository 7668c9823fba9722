"""`voicereflect review`: the local page's API over a real store, its guards, and the page in real Chromium."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import soundfile

from tests.cli_helpers import REPO, cli_env
from voicereflect.review import ReviewServer
from voicereflect.store import TinyDBSessionStore
from voicereflect.types import AudioClip, Turn

DATA = Path(__file__).parent / "data"
CHROMIUM = "/usr/bin/chromium"
# The machine's closed network refuses background connections unless Chromium is told not to try.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOT = REPO / "docs" / "review-page.png"
SPOKEN = "I finally talked with Priya about the move and I felt calmer afterwards."


class Journal:
    """A real store with two sessions; the first has a spoken turn with its recording."""

    def __init__(self, home: Path) -> None:
        self.store = TinyDBSessionStore(home)
        self.first = self.store.start_session("open")
        self.store.add_turn(self.first, Turn("assistant", "What has been on your mind today?", source="scripted"))
        samples, rate = soundfile.read(DATA / "harvard-16k.wav", dtype="float32", frames=3 * 16_000)
        audio = self.store.save_audio(self.first, AudioClip(samples, rate))
        self.store.add_turn(self.first, Turn("user", SPOKEN, source="voice", audio=audio))
        self.store.add_turn(self.first, Turn("assistant", "What helped it feel calmer?", source="llm"))
        self.store.add_turn(self.first, Turn("user", "Saying it out loud, I think.", source="text"))
        self.store.end_session(self.first)
        self.second = self.store.start_session("gratitude")
        self.store.add_turn(self.second, Turn("assistant", "What are you grateful for?", source="scripted"))
        self.store.add_turn(self.second, Turn("user", "A long walk by the river with my sister.", source="text"))
        self.store.end_session(self.second)


@pytest.fixture
def journal(tmp_path) -> Journal:
    return Journal(tmp_path / "home")


@pytest.fixture
def server(journal):
    with ReviewServer(journal.store).start() as running:
        yield running


def request(server: ReviewServer, method: str, path: str, *, token: bool = True, body: object = None,
            headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """One raw HTTP request (http.client, so the Host header is ours to set); returns status, headers, body."""
    sent = {"Host": f"127.0.0.1:{server.port}"}
    if token:
        sent["X-Review-Token"] = server.token
    if body is not None:
        sent["Content-Type"] = "application/json"
    sent.update(headers or {})
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        connection.request(method, path, body=None if body is None else json.dumps(body), headers=sent)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def get_json(server: ReviewServer, path: str, **kwargs) -> tuple[int, object]:
    status, _, body = request(server, "GET", path, **kwargs)
    return status, json.loads(body)


# -- guards ------------------------------------------------------------------------------


def test_every_request_needs_the_token(server):
    for path in ["/", "/api/sessions", "/api/search?q=priya", "/api/brief", "/api/audio/x/1"]:
        status, _, body = request(server, "GET", path, token=False)
        assert status == 403, path
        assert "?token=" in json.loads(body)["error"]
    assert request(server, "GET", "/api/sessions", token=False, headers={"X-Review-Token": "guess"})[0] == 403
    assert request(server, "GET", "/?token=guess", token=False)[0] == 403
    assert request(server, "GET", f"/?token={server.token}", token=False)[0] == 200
    assert server.url.endswith(f"/?token={server.token}")


def test_edits_need_the_header_token_and_json(server, journal):
    flag = {"turn": 1, "flagged": True}
    path = f"/api/sessions/{journal.first}/flags"
    assert request(server, "POST", f"{path}?token={server.token}", token=False, body=flag)[0] == 403
    assert request(server, "POST", path, body=flag, headers={"Content-Type": "text/plain"})[0] == 415
    assert request(server, "POST", path, body=flag, headers={"Origin": "http://evil.example"})[0] == 403
    assert journal.store.get_session(journal.first).notes.flagged == ()


def test_other_hosts_and_sites_are_refused(server):
    for host in ["evil.example", f"evil.example:{server.port}", f"localhost:{server.port}", "127.0.0.1"]:
        status, _, body = request(server, "GET", "/api/sessions", headers={"Host": host})
        assert status == 421, host
        assert server.origin in json.loads(body)["error"]
    for site in ["cross-site", "same-site"]:
        assert request(server, "GET", "/api/sessions", headers={"Sec-Fetch-Site": site})[0] == 403


def test_listens_on_loopback_only(server):
    assert server.httpd.server_address[0] == "127.0.0.1"
    with pytest.raises(ConnectionRefusedError):  # another loopback address: not bound to 0.0.0.0
        socket.create_connection(("127.0.0.2", server.port), timeout=5).close()


def test_responses_are_private_and_under_csp(server):
    for path in ["/", "/app.js", "/style.css", "/api/sessions", "/api/brief?since=all"]:
        status, headers, _ = request(server, "GET", path)
        assert status == 200, path
        assert headers["Cache-Control"] == "no-store"
        assert headers["Content-Security-Policy"].startswith("default-src")
        assert headers["X-Content-Type-Options"] == "nosniff"
    assert "default-src 'self'" in request(server, "GET", "/")[1]["Content-Security-Policy"]


def test_nothing_is_logged(journal, capfd):
    with ReviewServer(journal.store).start() as running:
        request(running, "GET", "/api/search?q=priya")
        request(running, "GET", "/api/sessions/20990101-000000-abcd")
    out, err = capfd.readouterr()
    assert "priya" not in (out + err).lower() and "/api" not in out + err


# -- API ------------------------------------------------------------------------------------


def test_sessions_newest_first_with_their_turns(server, journal):
    status, rows = get_json(server, "/api/sessions")
    assert status == 200
    assert [r["id"] for r in rows] == [journal.second, journal.first]
    status, record = get_json(server, f"/api/sessions/{journal.first}")
    assert record["turns"][1]["text"] == SPOKEN
    assert [t["has_audio"] for t in record["turns"]] == [False, True, False, False]
    assert "audio" not in record["turns"][1]  # file paths stay on the server


def test_unknown_session_is_a_404_with_one_line(server):
    for session_id in ["20990101-000000-abcd", "not-a-session"]:
        status, body = get_json(server, f"/api/sessions/{session_id}")
        assert status == 404
        assert "voicereflect sessions list" in body["error"] and "\n" not in body["error"]
    assert request(server, "GET", "/api/audio/20990101-000000-abcd/1")[0] == 404
    assert request(server, "GET", "/api/nothing-here")[0] == 404


def test_search_finds_words_anywhere_ignoring_case(server, journal):
    status, found = get_json(server, "/api/search?q=PRIYA%20move")
    assert status == 200
    assert [(r["session_id"], r["turn"], r["line"]) for r in found["results"]] == [(journal.first, 1, SPOKEN)]
    assert get_json(server, "/api/search?q=priya%20river")[1]["results"] == []  # every word, on one line
    assert get_json(server, "/api/search?q=")[1]["results"] == []


def test_recording_is_served_as_wav(server, journal):
    status, headers, wav = request(server, "GET", f"/api/audio/{journal.first}/1")
    assert (status, headers["Content-Type"], wav[:4]) == (200, "audio/wav", b"RIFF")
    assert wav == journal.store.recording_bytes(journal.store.get_session(journal.first).turns[1].audio)
    status, headers, part = request(server, "GET", f"/api/audio/{journal.first}/1", headers={"Range": "bytes=0-99"})
    assert (status, len(part), headers["Content-Range"]) == (206, 100, f"bytes 0-99/{len(wav)}")
    assert request(server, "GET", f"/api/audio/{journal.first}/3")[0] == 404  # typed: no recording
    assert request(server, "GET", f"/api/audio/{journal.first}/99")[0] == 404


def test_flags_only_the_persons_turns(server, journal):
    path = f"/api/sessions/{journal.first}/flags"
    status, _, body = request(server, "POST", path, body={"turn": 0, "flagged": True})
    assert status == 400 and "only your own turns" in json.loads(body)["error"]
    assert request(server, "POST", path, body={"turn": "1", "flagged": True})[0] == 400
    assert request(server, "POST", path, body={"turn": 1, "flagged": True})[0] == 200
    assert request(server, "POST", path, body={"turn": 3, "flagged": True})[0] == 200
    assert journal.store.get_session(journal.first).notes.flagged == (1, 3)
    status, _, body = request(server, "POST", path, body={"turn": 1, "flagged": False})
    assert json.loads(body)["flagged"] == [3]
    assert journal.store.get_session(journal.first).notes.flagged == (3,)
    assert journal.store.list_sessions()[0].flagged == 1


def test_tags_are_short_strings(server, journal):
    path = f"/api/sessions/{journal.second}/tags"
    for bad in [{"tags": "work"}, {"tags": [1]}, {"tags": ["x" * 41]}, {"tags": [""]}, {"tags": ["a\nb"]},
                {"tags": [str(n) for n in range(21)]}, ["work"]]:
        assert request(server, "POST", path, body=bad)[0] == 400, bad
    status, _, body = request(server, "POST", path, body={"tags": [" family ", "Walks", "walks"]})
    assert status == 200
    assert journal.store.get_session(journal.second).notes.tags == ("family", "Walks")
    assert journal.store.get_session(journal.second).notes.flagged == ()


def test_brief_is_a_page_of_its_own(server):
    status, headers, body = request(server, "GET", "/api/brief?since=30d")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert "sandbox" in headers["Content-Security-Policy"]  # the brief runs no scripts
    assert body.lstrip().lower().startswith(b"<!doctype html")
    assert b"river with my sister" in body  # the person's words, through voicereflect.prep
    assert request(server, "GET", "/api/brief?since=forever")[0] == 400


# -- the command ----------------------------------------------------------------------------

_RUN_REVIEW = """
from voicereflect.cli import cli, main
from voicereflect.review_command import review
if "review" not in cli.commands:
    cli.add_command(review)
main()
"""


def test_review_command_prints_the_address_and_serves_it(journal):
    process = subprocess.Popen([sys.executable, "-c", _RUN_REVIEW, "review", "--no-browser"], cwd=REPO,
                               env=cli_env(journal.store.home), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               stdin=subprocess.DEVNULL, text=True)
    try:
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:") and "/?token=" in url, process.stderr.read()
        port = int(url.split(":")[2].split("/")[0])
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        connection.request("GET", url.split(f":{port}")[1])
        assert connection.getresponse().status == 200
        connection.close()
    finally:
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=20)
    assert process.returncode in (0, 130), err
    assert "Traceback" not in err


# -- the page in a real browser -------------------------------------------------------------


def _chromium():
    """Playwright's sync API and Debian's Chromium, or a failure that says how to install them (CI has both)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright is not installed: run `.venv/bin/pip install playwright` (no `playwright install`).")
    path = CHROMIUM if os.access(CHROMIUM, os.X_OK) else shutil.which("chromium")
    if not path:
        pytest.fail(f"{CHROMIUM} not found: install Debian's chromium package (apt-get install chromium).")
    return sync_playwright, path


@pytest.mark.slow
def test_review_page_in_chromium(server, journal):
    sync_playwright, chromium = _chromium()
    problems: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.on("response", lambda r: problems.append(f"{r.status} {r.url.split('?')[0]}") if r.status >= 400 else None)
            _browse(page, server, journal)
        finally:
            browser.close()
    assert problems == [], "\n".join(problems)  # includes any Content-Security-Policy violation


def _browse(page, server: ReviewServer, journal: Journal) -> None:
    from playwright.sync_api import expect

    page.goto(server.url)
    expect(page.locator("header")).to_contain_text("Your own notes. Stored only on this computer.")
    rows = page.locator("#sessions li")
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_contain_text("A long walk by the river")
    expect(rows.nth(1)).to_contain_text("I finally talked with Priya")

    rows.nth(1).locator("a").click()
    spoken = page.locator("#turn-1")
    expect(spoken).to_contain_text(SPOKEN)
    expect(page.locator("#turn-0")).to_contain_text("Guide")
    expect(page.locator("#turn-0 button")).to_have_count(0)  # the guide's turns cannot be flagged

    flag = spoken.get_by_role("button", name="Flag for therapy")
    flag.click()
    expect(flag).to_have_attribute("aria-pressed", "true")
    assert journal.store.get_session(journal.first).notes.flagged == (1,)
    expect(rows.nth(1)).to_contain_text("1 flagged")

    audio = spoken.locator("audio")
    page.wait_for_function("el => el.readyState >= 1", arg=audio.element_handle(), timeout=10_000)
    assert audio.evaluate("el => el.duration") == pytest.approx(3.0, abs=0.05)
    audio.evaluate("el => el.play()")
    page.wait_for_function("el => el.currentTime > 0", arg=audio.element_handle(), timeout=10_000)  # it plays
    audio.evaluate("el => el.pause()")
    expect(page.locator("#turn-3 audio")).to_have_count(0)  # typed turn: nothing to play

    page.get_by_label("Tags").fill("family, moving")
    page.get_by_role("button", name="Save tags").click()
    expect(page.locator("#status")).to_contain_text("Tags saved")
    assert journal.store.get_session(journal.first).notes.tags == ("family", "moving")
    expect(rows.nth(1).locator(".tag")).to_have_text(["family", "moving"])
    page.screenshot(path=str(_screenshot_path()), full_page=True)

    page.get_by_role("link", name="Search").click()
    expect(page.locator("#view-sessions")).to_be_hidden()
    page.get_by_label("Search your words").fill("priya")
    hit = page.locator("#search-results li")
    expect(hit).to_have_count(1)
    expect(hit.locator("mark")).to_have_text("Priya")
    hit.locator("a").click()
    expect(page.locator("#turn-1")).to_be_focused()

    page.get_by_role("link", name="Prep brief").click()
    expect(page.locator("#view-search")).to_be_hidden()
    brief = page.frame_locator("#brief-frame").locator("body")
    expect(brief).to_contain_text(SPOKEN)  # the flagged turn, in the brief from voicereflect.prep


def _screenshot_path() -> Path:
    """docs/review-page.png only when asked (VOICEREFLECT_SCREENSHOTS=1): a test run never changes the repo."""
    if os.environ.get("VOICEREFLECT_SCREENSHOTS") != "1":
        return Path(tempfile.mkdtemp(prefix="voicereflect-review-")) / "review-page.png"
    SCREENSHOT.parent.mkdir(exist_ok=True)
    return SCREENSHOT
