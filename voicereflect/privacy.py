"""What leaves the machine: redaction before a remote LLM, and the notice that text is sent there.

Both apply only when ``[llm] base_url`` is not loopback; the embedded server and a model on
localhost never see either. Redaction changes only what is sent: the session store always
keeps the person's own words.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from urllib.parse import urlparse

from voicereflect.interfaces import ChatConnection
from voicereflect.storage import atomic_write, ensure_dir
from voicereflect.types import Message, now_iso

REDACTED = "[redacted]"
NOTICE_FILE = "remote_llm_notices.json"
"""In the data folder: the hosts whose first-use notice has been shown, and when."""


def redaction_pattern(words: Sequence[str]) -> re.Pattern[str] | None:
    """One case-insensitive regex for whole-word matches of ``words``; None if there are none.

    A phrase ("New York") matches across any run of whitespace ("new\\n york"). Longer
    phrases are tried first so "Sam Smith" is replaced whole rather than leaving "Smith".
    """
    phrases = {" ".join(w.split()) for w in words if w.strip()}
    if not phrases:
        return None
    alternatives = [r"\s+".join(map(re.escape, p.split())) for p in sorted(phrases, key=len, reverse=True)]
    # Lookarounds instead of \b so phrases that start or end in punctuation ("C++") still match whole.
    return re.compile(r"(?<!\w)(?:" + "|".join(alternatives) + r")(?!\w)", re.IGNORECASE)


def redact(text: str, pattern: re.Pattern[str] | None) -> str:
    """``text`` with every match of ``pattern`` replaced by ``[redacted]``."""
    return pattern.sub(REDACTED, text) if pattern is not None else text


class RedactingChat:
    """A ChatModel that replaces configured words in every message before the inner model sees them."""

    def __init__(self, inner: ChatConnection, words: Sequence[str]) -> None:
        """Args: inner: the model that receives the redacted messages. words: words or phrases to hide."""
        self.inner = inner
        self.pattern = redaction_pattern(words)

    def redacted(self, messages: Sequence[Message]) -> list[Message]:
        """The messages exactly as they will be sent."""
        return [Message(m.role, redact(m.content, self.pattern)) for m in messages]

    def stream(self, messages: Sequence[Message]) -> Iterator[str]:
        """Yield the inner model's reply to the redacted messages; raises LLMError on failure."""
        return self.inner.stream(self.redacted(messages))

    def complete(self, messages: Sequence[Message]) -> str:
        """The whole reply to the redacted messages as one string."""
        return "".join(self.stream(messages))

    def close(self) -> None:
        """End the inner model's open requests and its connection."""
        self.inner.close()


def remote_host(base_url: str) -> str:
    """The host a base URL sends to, lower-cased, with its port if one is given."""
    parsed = urlparse(base_url)
    host = (parsed.hostname or base_url).lower()
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{parsed.port}" if parsed.port else host


def _read_shown(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        # Missing or damaged: the safe reading is "never shown", so the full notice appears again.
        return {}
    hosts = data.get("hosts") if isinstance(data, dict) else None
    return {k: v for k, v in hosts.items() if isinstance(v, str)} if isinstance(hosts, dict) else {}


def _remember_shown(path: Path, shown: dict[str, str]) -> None:
    payload = json.dumps({"hosts": shown}, indent=2, sort_keys=True).encode("utf-8")
    try:
        ensure_dir(path.parent)
        atomic_write(path, lambda f: f.write(payload))
    except OSError:
        # The notice was already shown; failing to remember it only means showing it in full next time.
        pass


def remote_notice(base_url: str, data_folder: Path, *, redacted_count: int = 0) -> str:
    """The line(s) to show before any text goes to a remote ``base_url``, recording that it was shown.

    The first session to a host gets the full notice; later ones a one-line reminder. The
    record is a small 0600 JSON file in ``data_folder``.

    Args:
        base_url: the configured ``[llm] base_url`` (not loopback).
        data_folder: the voicereflect data folder.
        redacted_count: how many words or phrases ``[privacy] redact`` hides.
    """
    host = remote_host(base_url)
    path = Path(data_folder) / NOTICE_FILE
    shown = _read_shown(path)
    hidden = f" {redacted_count} word(s) from [privacy] redact are replaced by {REDACTED} first." if redacted_count else ""
    if host in shown:
        return f"Reminder: what you say in this session is sent to {host}.{hidden}"
    shown[host] = now_iso()
    _remember_shown(path, shown)
    return (
        f"Privacy notice: the language model is not on this machine. Everything you say or type in this "
        f"session will be sent to {host} ({base_url}) to get replies.{hidden} Your saved sessions stay on "
        "this machine, and nothing you say has been sent yet: to keep everything local, stop now (Ctrl-C) and set "
        "[privacy] local_only = true."
    )


def guard_remote_chat(chat: ChatConnection, *, base_url: str, words: Sequence[str], data_folder: Path,
                      announce: Callable[[str], None], check_only: bool = False) -> ChatConnection:
    """Show the remote-LLM notice through ``announce`` and wrap ``chat`` in redaction if words are set.

    Call this before anything is sent to ``chat``; the caller decides that ``base_url`` is remote.

    Args:
        check_only: for ``voicereflect doctor``, which sends one test line and none of the
            person's words: say so, and keep the full notice for their first real session.
    """
    pattern = redaction_pattern(words)
    count = len({" ".join(w.split()).lower() for w in words if w.strip()})
    if check_only:
        announce(f"Checking {remote_host(base_url)}: one test message is sent, none of your words.")
    else:
        announce(remote_notice(base_url, data_folder, redacted_count=count))
    return RedactingChat(chat, words) if pattern is not None else chat
