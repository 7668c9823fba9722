"""`voicereflect review`: a small read-mostly web page on 127.0.0.1 over the session store.

The journal is private, so the server trusts nothing but its own page:

* it listens on 127.0.0.1 only, and answers only requests whose Host is ``127.0.0.1:<port>``
  (a DNS-rebinding page names its own host);
* every request but the page's static files needs the random token from the printed
  address: the ``X-Review-Token`` header (fetch) or ``?token=`` (the page, audio, the brief).
  No cookie: browsers send 127.0.0.1 cookies to every port, so any local server could read it;
* edits (POST) need the header and a JSON body, which a cross-site form cannot send, and
  requests the browser marks ``Sec-Fetch-Site: cross-site/same-site`` are refused;
* responses are ``no-store``, under a ``default-src 'self'`` Content-Security-Policy, and
  nothing is logged (request lines carry search words).
"""

from __future__ import annotations

import hmac
import json
import re
import secrets
import sys
import threading
import traceback
import webbrowser
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from html import escape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from voicereflect.debug import debug_enabled
from voicereflect.errors import SessionNotFound, VoiceReflectError
from voicereflect.search import query_pattern
from voicereflect.types import MAX_TAG_CHARS, SessionNotes, SessionRecord, Turn, clean_tag, merge_tags

HOST = "127.0.0.1"
PAGE_DIR = Path(__file__).with_name("review_page")
STATIC = {"/app.js": ("app.js", "text/javascript; charset=utf-8"),
          "/style.css": ("style.css", "text/css; charset=utf-8"),
          "/favicon.svg": ("favicon.svg", "image/svg+xml")}
MAX_BODY_BYTES = 16_384
SEARCH_LIMIT = 200
MAX_TAGS = 20
SINCE_DAYS = {"7d": 7, "14d": 14, "30d": 30, "90d": 90, "all": None}
PAGE_CSP = ("default-src 'self'; base-uri 'none'; form-action 'none'; object-src 'none'; "
            "frame-ancestors 'none'")
# The brief is a self-contained page with inline styles: no scripts at all, framed by our page only.
BRIEF_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'self'; sandbox"
_ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    ("GET", re.compile(r"/api/sessions"), "sessions"),
    ("GET", re.compile(r"/api/sessions/([\w-]+)"), "session"),
    ("GET", re.compile(r"/api/search"), "search"),
    ("GET", re.compile(r"/api/audio/([\w-]+)/(\d{1,6})"), "audio"),
    ("GET", re.compile(r"/api/brief"), "brief"),
    ("POST", re.compile(r"/api/sessions/([\w-]+)/flags"), "set_flag"),
    ("POST", re.compile(r"/api/sessions/([\w-]+)/tags"), "set_tags"),
]


class ApiError(Exception):
    """A request the page cannot answer: an HTTP status and a one-line message for the person."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class ReviewApi:
    """What the page may ask of the store, as plain data in and out (no HTTP here).

    Reads are free; the only edits are flags on the person's own turns and the session's
    tags, each a new :class:`SessionNotes` through ``store.update_notes``.
    """

    def __init__(self, store: Any) -> None:
        """Answer from ``store`` (a TinyDBSessionStore or MemorySessionStore)."""
        self.store = store
        self._edit_lock = threading.Lock()  # one read-modify-write of notes at a time

    def sessions(self) -> list[dict[str, Any]]:
        """Every session's summary row, newest first."""
        return [s.to_dict() for s in reversed(self.store.list_sessions())]

    def session(self, session_id: str) -> dict[str, Any]:
        """One session with its turns and notes; each turn says ``has_audio`` instead of its file path."""
        data = self.store.get_session(session_id).to_dict()
        for turn in data["turns"]:
            turn["has_audio"] = bool(turn.pop("audio"))
        return data

    def search(self, query: str) -> dict[str, Any]:
        """Lines (of any turn, newest session first) holding every word of ``query``, ignoring case.

        Returns ``{words, results: [{session_id, started_at, guide, turn, role, at, line}], more}``.
        """
        words = re.findall(r"[\w']+", query)[:12]
        patterns = query_pattern(" ".join(words))  # whole words, as `sessions search`
        results: list[dict[str, Any]] = []
        for summary in reversed(self.store.list_sessions()) if words else []:
            try:
                record = self.store.get_session(summary.id)
            except SessionNotFound:
                continue  # deleted while we looked
            for index, turn in enumerate(record.turns):
                for line in turn.text.splitlines():
                    if all(p.search(line) for p in patterns):
                        results.append({"session_id": summary.id, "started_at": summary.started_at,
                                        "guide": summary.guide, "turn": index, "role": turn.role,
                                        "at": turn.started_at, "line": line.strip()})
                        if len(results) > SEARCH_LIMIT:
                            return {"words": words, "results": results[:SEARCH_LIMIT], "more": True}
        return {"words": words, "results": results, "more": False}

    def audio(self, session_id: str, index: int) -> bytes:
        """The WAV bytes of turn ``index``'s recording (ApiError 404 if it has none)."""
        turn = _turn(self.store.get_session(session_id), index)
        wav = self.store.recording_bytes(turn.audio) if turn.audio else None
        if wav is None:
            raise ApiError(404, f"Turn {index} has no recording (none was kept, or [storage] audio_days removed it).")
        return wav

    def set_flag(self, session_id: str, body: Any) -> dict[str, Any]:
        """Flag or unflag one of the person's turns: ``{"turn": n, "flagged": bool}``; returns the notes."""
        if not isinstance(body, dict) or type(body.get("turn")) is not int or type(body.get("flagged")) is not bool:
            raise ApiError(400, 'Send {"turn": <turn number>, "flagged": true or false}.')
        with self._edit_lock:
            record = self.store.get_session(session_id)
            if _turn(record, body["turn"]).role != "user":
                raise ApiError(400, f"Turn {body['turn']} is the guide's; only your own turns can be flagged.")
            turn, on = body["turn"], body["flagged"]
            return self._update(record, lambda notes: replace(
                notes, flagged=tuple(sorted(set(notes.flagged) - {turn} | ({turn} if on else set())))))

    def set_tags(self, session_id: str, body: Any) -> dict[str, Any]:
        """Replace the session's tags: ``{"tags": [...]}`` of short strings; returns the notes."""
        tags = _clean_tags(body.get("tags") if isinstance(body, dict) else None)
        with self._edit_lock:
            record = self.store.get_session(session_id)
            return self._update(record, lambda notes: replace(notes, tags=tags))

    def brief_html(self, since: str) -> str:
        """The therapy-prep brief (``voicereflect.prep``) for sessions since ``since`` (7d, 14d, 30d, 90d, all).

        The same brief as ``voicereflect prep --format html``: one self-contained page.
        """
        from voicereflect import prep  # matplotlib and the rest load only when a brief is asked for
        from voicereflect.patterns import records_since

        if since not in SINCE_DAYS:
            raise ApiError(400, f"Unknown period '{since[:20]}'; use one of {', '.join(SINCE_DAYS)}.")
        days = SINCE_DAYS[since]
        start = datetime.now().astimezone() - timedelta(days=days) if days else None
        records = records_since(self.store, start)
        try:
            return prep.render_html(prep.build_brief(records, start))
        except VoiceReflectError as exc:
            return _note_page("The prep brief could not be made", str(exc))

    def _update(self, record: SessionRecord, change: Callable[[SessionNotes], SessionNotes]) -> dict[str, Any]:
        # Applied to the notes as they are on disk now, so a concurrent `talk` (its summary) is kept.
        return self.store.update_notes(record.summary.id, change).to_dict()


def _turn(record: SessionRecord, index: int) -> Turn:
    if not 0 <= index < len(record.turns):
        raise ApiError(404, f"This session has turns 0 to {len(record.turns) - 1}, not {index}.")
    return record.turns[index]


def _clean_tags(tags: Any) -> tuple[str, ...]:
    """Tags stripped and de-duplicated (ignoring case); ApiError 400 unless a short list of short strings."""
    problem = f'Send {{"tags": [...]}}: at most {MAX_TAGS} tags of 1 to {MAX_TAG_CHARS} printable characters.'
    if not isinstance(tags, list) or len(tags) > MAX_TAGS or not all(isinstance(t, str) for t in tags):
        raise ApiError(400, problem)
    cleaned = [clean_tag(t) for t in tags]
    if None in cleaned:
        raise ApiError(400, problem)
    return merge_tags(cleaned)


def _note_page(title: str, text: str) -> str:
    return (f"<!doctype html><html lang=en><meta charset=utf-8><title>{escape(title)}</title>"
            "<body style=\"font:17px/1.6 system-ui,sans-serif;margin:2rem;color:#222\">"
            f"<h1 style=\"font-size:1.3rem\">{escape(title)}</h1><p>{escape(text)}</p></body></html>")


class ReviewError(VoiceReflectError):
    """The review page could not be served (e.g. the port is taken)."""


class ReviewServer:
    """The review page's HTTP server on 127.0.0.1, with its own random token.

    Use :meth:`serve_forever` in the foreground (the command) or :meth:`start` to run it
    on a daemon thread (tests); :meth:`close` stops it. Also a context manager.
    """

    def __init__(self, store: Any, *, port: int = 0, token: str | None = None) -> None:
        """Bind 127.0.0.1:``port`` (0: a free port the system picks).

        Raises:
            ReviewError: the port is in use or not allowed.
        """
        self.api = ReviewApi(store)
        self.token = token or secrets.token_urlsafe(32)
        try:
            self.httpd = ThreadingHTTPServer((HOST, port), _Handler)
        except OSError as exc:
            raise ReviewError(f"Cannot listen on {HOST}:{port} ({exc.strerror}). Pick another --port, "
                              "or leave it out for a free one.") from exc
        self.httpd.daemon_threads = True
        self.httpd.review = self  # type: ignore[attr-defined]
        self.port = self.httpd.server_address[1]
        self._thread: threading.Thread | None = None

    @property
    def origin(self) -> str:
        """``http://127.0.0.1:<port>``: the only origin the server answers."""
        return f"http://{HOST}:{self.port}"

    @property
    def url(self) -> str:
        """The address to open: the page, with the token."""
        return f"{self.origin}/?token={self.token}"

    def serve_forever(self) -> None:
        """Answer requests until :meth:`close` (from another thread) or Ctrl-C."""
        self.httpd.serve_forever(poll_interval=0.2)

    def start(self) -> "ReviewServer":
        """Serve on a daemon thread and return self."""
        self._thread = threading.Thread(target=self.serve_forever, name="voicereflect-review", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving and release the port."""
        if self._thread is not None:
            self.httpd.shutdown()
            self._thread.join(timeout=5)
        self.httpd.server_close()

    def __enter__(self) -> "ReviewServer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def serve(store: Any, *, open_browser: bool = True, port: int = 0,
          announce: Callable[[str], None] = print) -> None:
    """Serve the review page until Ctrl-C: announce its address, then open it in the browser.

    Args:
        store: the session store (``components.open_store(settings)``).
        open_browser: open the address with :mod:`webbrowser`.
        port: a fixed port; 0 picks a free one.
        announce: receives the address (with its token) once the server listens.
    """
    server = ReviewServer(store, port=port)
    announce(server.url)
    if open_browser:
        webbrowser.open(server.url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()


class _Handler(BaseHTTPRequestHandler):
    server_version = "voicereflect-review"
    sys_version = ""
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002  (the base class's name)
        """Log nothing: request lines hold session ids and search words."""

    def do_GET(self) -> None:  # noqa: N802  (http.server's naming)
        self._answer("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._answer("POST")

    def _answer(self, method: str) -> None:
        review: ReviewServer = self.server.review  # type: ignore[attr-defined]
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        try:
            self._check_request(review, method, parts.path, query)
            if method == "GET" and parts.path in STATIC:
                name, kind = STATIC[parts.path]
                return self._send(200, (PAGE_DIR / name).read_bytes(), kind)
            self._check_token(review, method, query)
            if method == "GET" and parts.path == "/":
                return self._send(200, (PAGE_DIR / "index.html").read_bytes(), "text/html; charset=utf-8")
            self._route(review.api, method, parts.path, query)
        except ApiError as exc:
            self._send_json(exc.status, {"error": exc.message})
        except SessionNotFound as exc:
            self._send_json(404, {"error": str(exc)})
        except VoiceReflectError as exc:
            self._send_json(500, {"error": str(exc)})
        except Exception as exc:  # noqa: BLE001  (answer, and say only the kind: messages may quote the journal)
            print(f"voicereflect review: {type(exc).__name__} while answering a request", file=sys.stderr)
            if debug_enabled():
                traceback.print_exc()
            self._send_json(500, {"error": "Something went wrong on the server. Run with --debug to see why."})

    def _check_request(self, review: ReviewServer, method: str, path: str, query: dict[str, str]) -> None:
        if self.headers.get("Host") != f"{HOST}:{review.port}":
            raise ApiError(421, f"This page only answers at {review.origin}. Open the address "
                                "`voicereflect review` printed.")
        if self.headers.get("Sec-Fetch-Site") in {"cross-site", "same-site"}:
            raise ApiError(403, "Requests from other pages are refused. Open the address `voicereflect review` printed.")
        if method == "POST" and self.headers.get("Origin") not in {None, review.origin}:
            raise ApiError(403, "Edits from other pages are refused. Use the review page itself.")

    def _check_token(self, review: ReviewServer, method: str, query: dict[str, str]) -> None:
        given = self.headers.get("X-Review-Token") or ("" if method == "POST" else query.get("token", ""))
        if not hmac.compare_digest(given.encode(), review.token.encode()):
            raise ApiError(403, "Missing or wrong token. Open the address `voicereflect review` printed "
                                "(it ends in ?token=...).")

    def _route(self, api: ReviewApi, method: str, path: str, query: dict[str, str]) -> None:
        for route_method, pattern, name in _ROUTES:
            match = pattern.fullmatch(path)
            if match and route_method == method:
                break
        else:
            raise ApiError(404 if method == "GET" else 405, f"No such page: {method} {path[:80]}")
        if name == "audio":
            return self._send_audio(api.audio(match[1], int(match[2])))
        if name == "brief":
            return self._send(200, api.brief_html(query.get("since", "7d")).encode("utf-8", "replace"),
                              "text/html; charset=utf-8", csp=BRIEF_CSP)
        if method == "POST":
            return self._send_json(200, getattr(api, name)(match[1], self._json_body()))
        args = [query.get("q", "")] if name == "search" else list(match.groups())
        self._send_json(200, getattr(api, name)(*args))

    def _json_body(self) -> Any:
        if (self.headers.get("Content-Type") or "").split(";")[0].strip() != "application/json":
            raise ApiError(415, "Send the edit as JSON (Content-Type: application/json).")
        length = int(self.headers.get("Content-Length") or 0)
        if not 0 < length <= MAX_BODY_BYTES:
            raise ApiError(413, f"The edit must be 1 to {MAX_BODY_BYTES} bytes of JSON.")
        try:
            return json.loads(self.rfile.read(length))
        except (ValueError, UnicodeDecodeError) as exc:
            raise ApiError(400, "The edit is not valid JSON.") from exc

    def _send_audio(self, wav: bytes) -> None:
        start, end = _byte_range(self.headers.get("Range"), len(wav))
        if (start, end) == (0, len(wav) - 1):
            return self._send(200, wav, "audio/wav", extra={"Accept-Ranges": "bytes"})
        self._send(206, wav[start:end + 1], "audio/wav",
                   extra={"Accept-Ranges": "bytes", "Content-Range": f"bytes {start}-{end}/{len(wav)}"})

    def _send_json(self, status: int, data: Any) -> None:
        self._send(status, json.dumps(data).encode("ascii"), "application/json")

    def _send(self, status: int, body: bytes, kind: str, *, csp: str = PAGE_CSP,
              extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        headers = {"Content-Type": kind, "Content-Length": str(len(body)), "Content-Security-Policy": csp,
                   "Cache-Control": "no-store", "Pragma": "no-cache", "X-Content-Type-Options": "nosniff",
                   "Referrer-Policy": "no-referrer", "Cross-Origin-Resource-Policy": "same-origin",
                   "X-Frame-Options": "SAMEORIGIN" if csp == BRIEF_CSP else "DENY", **(extra or {})}
        if status >= 400:  # a refused request's body may be unread: never reuse the connection
            headers["Connection"] = "close"
            self.close_connection = True
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


def _byte_range(header: str | None, size: int) -> tuple[int, int]:
    """The inclusive byte range a ``Range: bytes=a-b`` header asks for (the whole file if none)."""
    match = re.fullmatch(r"bytes=(\d*)-(\d*)", (header or "").strip())
    if not match or not any(match.groups()) or size == 0:
        return 0, size - 1
    first, last = match.groups()
    if first == "":
        return max(0, size - int(last)), size - 1
    start, end = int(first), min(int(last), size - 1) if last else size - 1
    if start > end:
        raise ApiError(416, f"The recording has {size} bytes; that range is outside it.")
    return start, end
