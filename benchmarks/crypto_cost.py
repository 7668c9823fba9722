"""Benchmark: what encryption at rest costs: unlock time, and encrypt+decrypt speed per file.

Creates a key in a temporary data folder, then times :func:`unlock` (scrypt with the
parameters in key.json; the target is 0.1-0.3 s) and whole-file encrypt and decrypt of a
50 KB JSON-like session file and a 1 MB 16-bit WAV-like recording. Prints medians.

    python benchmarks/crypto_cost.py --unlocks 5 --rounds 50
"""

from __future__ import annotations

import argparse
import io
import json
import random
import statistics
import sys
import tempfile
import time
import wave
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from voicereflect.crypto import (MAGIC, NONCE_BYTES, SCRYPT_N, SCRYPT_P, SCRYPT_R, TAG_BYTES, Cipher,  # noqa: E402
                                 create_key, unlock)

SENTENCE = "Today I kept thinking about the conversation with my sister and why it stayed with me"


def json_payload(size_bytes: int = 50_000) -> bytes:
    """A session-file-like JSON document of about ``size_bytes``."""
    turns: dict[str, dict[str, str]] = {}
    while len(json.dumps({"turns": turns})) < size_bytes:
        n = len(turns) + 1
        turns[str(n)] = {"role": "user" if n % 2 else "assistant", "text": f"{SENTENCE} ({n})",
                         "started_at": "2026-11-25T15:23:01.123+00:00", "source": "voice"}
    return json.dumps({"turns": turns}, ensure_ascii=True).encode("ascii")[:size_bytes]


def wav_payload(size_bytes: int = 1_000_000, sample_rate: int = 16_000) -> bytes:
    """A 16-bit mono WAV of about ``size_bytes`` with noise-like samples (incompressible, like speech)."""
    rng = random.Random(0)
    frames = rng.randbytes(size_bytes - 44)
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(sample_rate)
        wav.writeframes(frames[: len(frames) // 2 * 2])
    return buffer.getvalue()


def time_unlock(home: Path, passphrase: str, count: int) -> list[float]:
    """Seconds per :func:`unlock`, ``count`` times."""
    times = []
    for _ in range(count):
        started = time.perf_counter()
        unlock(home, passphrase)
        times.append(time.perf_counter() - started)
    return times


def time_round_trip(cipher: Cipher, payload: bytes, rounds: int) -> tuple[float, float]:
    """Median seconds for one encrypt and one decrypt of ``payload``."""
    context = "sessions/2026/20261125-152301-a1b2.json"
    encrypt_s, decrypt_s = [], []
    for _ in range(rounds):
        started = time.perf_counter()
        blob = cipher.encrypt(payload, context=context)
        middle = time.perf_counter()
        assert cipher.decrypt(blob, context=context) == payload
        decrypt_s.append(time.perf_counter() - middle)
        encrypt_s.append(middle - started)
    return statistics.median(encrypt_s), statistics.median(decrypt_s)


def main() -> None:
    """Print unlock time and encrypt+decrypt throughput."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--unlocks", type=int, default=5, help="unlock() calls to time (default 5)")
    parser.add_argument("--rounds", type=int, default=50, help="encrypt+decrypt rounds per payload (default 50)")
    args = parser.parse_args()
    passphrase = "a benchmark passphrase"
    with tempfile.TemporaryDirectory() as folder:
        home = Path(folder) / "home"
        started = time.perf_counter()
        cipher = create_key(home, passphrase)
        create_s = time.perf_counter() - started
        unlocks = time_unlock(home, passphrase, args.unlocks)
    print(f"scrypt n=2**{SCRYPT_N.bit_length() - 1} r={SCRYPT_R} p={SCRYPT_P} "
          f"({128 * SCRYPT_R * SCRYPT_N // 2**20} MiB)")
    print(f"create_key: {create_s * 1000:.0f} ms")
    print(f"unlock:     median {statistics.median(unlocks) * 1000:.0f} ms, "
          f"min {min(unlocks) * 1000:.0f} ms, max {max(unlocks) * 1000:.0f} ms over {len(unlocks)}")
    for name, payload in (("50 KB JSON", json_payload()), ("1 MB WAV", wav_payload())):
        encrypt_s, decrypt_s = time_round_trip(cipher, payload, args.rounds)
        megabytes = len(payload) / 1e6
        print(f"{name:10s}: encrypt {encrypt_s * 1000:.3f} ms, decrypt {decrypt_s * 1000:.3f} ms, "
              f"encrypt+decrypt {megabytes / (encrypt_s + decrypt_s):.0f} MB/s "
              f"(+{len(MAGIC) + NONCE_BYTES + TAG_BYTES} bytes per file)")


if __name__ == "__main__":
    main()
