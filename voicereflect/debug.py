"""Debug lines on stderr, with VOICEREFLECT_DEBUG=1 (or --debug): timings and decisions, never any words."""

from __future__ import annotations

import os
import sys


def debug_enabled() -> bool:
    """Whether debug output was asked for."""
    return os.environ.get("VOICEREFLECT_DEBUG") == "1"


def debug_line(text: str) -> None:
    """Print ``text`` on stderr when debug output was asked for. Callers never pass the person's words."""
    if debug_enabled():
        print(text, file=sys.stderr, flush=True)
