"""Benchmark: how long one durable add_turn takes when the store already holds N sessions.

Fills a temporary data folder with N sessions (default 10,000, each with one turn and
ended) through the store's own API, then times add_turn on a fresh, fully durable
store: mostly a live session, sometimes an old one picked at random. Prints p50/p99/max
in milliseconds; the target is p99 < 20 ms.

Each add_turn is followed by a "disk floor" probe: the same two durable file
replacements (temp file, fsync, rename, fsync folder) with bytes of the same sizes but
no TinyDB or JSON, so a slow or jittery disk shows up as such and not as store cost.

    python benchmarks/store_save_turn.py --sessions 10000 --turns 500
    python benchmarks/store_save_turn.py --encrypted     # the same with [storage] encrypt = true
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from voicereflect.crypto import create_key  # noqa: E402
from voicereflect.sealing import FileSeal  # noqa: E402
from voicereflect.storage import atomic_write  # noqa: E402
from voicereflect.store import TinyDBSessionStore  # noqa: E402
from voicereflect.types import Turn  # noqa: E402

SENTENCE = "Today I kept thinking about the conversation with my sister and why it stayed with me"


def fill(home: Path, sessions: int, seal: FileSeal) -> list[str]:
    """Create the sessions without fsync (a bulk fill; the timed part is durable)."""
    store = TinyDBSessionStore(home, durable=False, seal=seal)
    ids = []
    started = time.perf_counter()
    for n in range(sessions):
        session_id = store.start_session("open")
        store.add_turn(session_id, Turn(role="user", text=f"{SENTENCE} ({n})", source="voice"))
        store.end_session(session_id)
        ids.append(session_id)
        if (n + 1) % 1000 == 0:
            print(f"  filled {n + 1}/{sessions} ({time.perf_counter() - started:.0f} s)", file=sys.stderr)
    return ids


def disk_floor_ms(folder: Path, sizes: list[int]) -> float:
    """Time durable replacements of files of these sizes, without any store logic."""
    started = time.perf_counter()
    for n, size in enumerate(sizes):
        payload = b"x" * size
        atomic_write(folder / f"probe{n}.json", lambda f: f.write(payload))
    return (time.perf_counter() - started) * 1000


def percentile(values: list[float], fraction: float) -> float:
    """The value below which ``fraction`` of ``values`` fall (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=10_000, help="sessions in the store (default: 10000)")
    parser.add_argument("--turns", type=int, default=500, help="timed add_turn calls (default: 500)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default: 1)")
    parser.add_argument("--encrypted", action="store_true", help="encrypt every file (AES-256-GCM), as with encrypt = true")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="voicereflect-bench-") as folder:
        home = Path(folder) / "home"
        seal = FileSeal(home, create_key(home, "benchmark passphrase") if args.encrypted else None)
        print(f"Filling {args.sessions} sessions in {home} ({seal}) ...", file=sys.stderr)
        ids = fill(home, args.sessions, seal)
        store = TinyDBSessionStore(home, seal=seal)  # durable: every add_turn fsyncs
        current = store.start_session("open")
        timings_ms, floor_ms = [], []
        probes = Path(folder) / "probes"
        probes.mkdir()
        for n in range(args.turns):
            # Mostly the live session, sometimes an old one (resumed or re-opened).
            session_id = current if n % 5 else rng.choice(ids)
            turn = Turn(role="user" if n % 2 else "assistant", text=f"{SENTENCE} [{n}]")
            started = time.perf_counter()
            store.add_turn(session_id, turn)
            timings_ms.append((time.perf_counter() - started) * 1000)
            sizes = [store.session_path(session_id).stat().st_size, store.index_path(session_id).stat().st_size]
            floor_ms.append(disk_floor_ms(probes, sizes))
        started = time.perf_counter()
        listed = store.list_sessions()
        list_ms = (time.perf_counter() - started) * 1000
        index_kib = sum(p.stat().st_size for p in (home / "index").glob("*.json")) / 1024
    p50, p99 = statistics.median(timings_ms), percentile(timings_ms, 0.99)
    print(f"sessions: {len(listed)}  index: {index_kib:.0f} KiB in 16 shards  {'encrypted' if args.encrypted else 'plain'}")
    print(f"add_turn over {args.turns} calls: p50 {p50:.1f} ms  p99 {p99:.1f} ms  max {max(timings_ms):.1f} ms")
    floor50, floor99 = statistics.median(floor_ms), percentile(floor_ms, 0.99)
    print(f"disk floor (same 2 durable writes, no store logic): p50 {floor50:.1f} ms  p99 {floor99:.1f} ms")
    print(f"list_sessions: {list_ms:.0f} ms")
    print(f"target p99 < 20 ms: {'met' if p99 < 20 else 'MISSED'}")


if __name__ == "__main__":
    main()
