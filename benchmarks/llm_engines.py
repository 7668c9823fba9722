"""Compare the two embedded llama.cpp engines on SmolLM2-135M through the openai client.

  xllamacpp            in-process C++ server (prebuilt wheel; voicereflect's choice)
  llama-cpp-python     `python -m llama_cpp.server` as a child process (compiles from source)

Usage: .venv/bin/python benchmarks/llm_engines.py [--llama-cpp-python PYTHON] [--rounds N]
PYTHON is an interpreter with `llama-cpp-python[server]` installed (it is not a project
dependency: it takes 4-12 minutes to compile). Without it only xllamacpp is measured.
Prints startup time, first-token latency (cold and warm, with the system prompt cached),
generation speed and resident memory.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from voicereflect.embedded import EmbeddedLlamaServer, default_model_path  # noqa: E402
from voicereflect.llm import OpenAIChat  # noqa: E402
from voicereflect.guides import get_guide  # noqa: E402
from voicereflect.reflection import system_prompt  # noqa: E402
from voicereflect.types import Message  # noqa: E402

LINES = [
    "I had a fight with my sister today and I keep replaying it.",
    "Work has been really stressful and I snapped at a colleague.",
    "I felt embarrassed when my boss corrected me in the meeting.",
    "I want to tell my therapist that I'm not sure the sessions help.",
]


def rss_mb(pid: int) -> float:
    """Resident memory of a process, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def measure(chat: OpenAIChat, rounds: int) -> dict[str, float]:
    """First-token latency and tokens/s over the test lines."""
    system = system_prompt(get_guide("open"))
    first_tokens, speeds = [], []
    for i in range(rounds):
        line = LINES[i % len(LINES)]
        start = time.monotonic()
        first = None
        pieces = 0
        for _ in chat.stream([Message("system", system), Message("user", line)]):
            if first is None:
                first = time.monotonic() - start
            pieces += 1
        total = time.monotonic() - start
        first_tokens.append(first or total)
        if pieces > 1 and total > first:
            speeds.append((pieces - 1) / (total - first))
    return {
        "first_token_cold_s": first_tokens[0],
        "first_token_warm_p50_s": statistics.median(first_tokens[1:]),
        "tokens_per_s": statistics.median(speeds) if speeds else 0.0,
    }


def bench_xllamacpp(rounds: int) -> dict[str, float]:
    """The in-process engine."""
    base_rss = rss_mb(os.getpid())
    start = time.monotonic()
    server = EmbeddedLlamaServer(threads=2).start()
    startup = time.monotonic() - start
    chat = OpenAIChat(base_url=server.base_url, api_key=server.api_key, model=server.model_name,
                      sampling={"max_tokens": 80, "temperature": 0.4})
    result = measure(chat, rounds)
    result.update(startup_s=startup, rss_mb=rss_mb(os.getpid()) - base_rss)
    server.stop()
    return result


def bench_llama_cpp_python(python: str, rounds: int) -> dict[str, float]:
    """The child-process engine."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    start = time.monotonic()
    child = subprocess.Popen(
        [python, "-m", "llama_cpp.server", "--model", str(default_model_path()), "--host", "127.0.0.1",
         "--port", str(port), "--n_threads", "2", "--n_ctx", "4096", "--api_key", "k"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/docs", timeout=1)
                break
            except OSError:
                if time.monotonic() - start > 120:
                    raise SystemExit("llama-cpp-python server did not start")
                time.sleep(0.05)
        startup = time.monotonic() - start
        chat = OpenAIChat(base_url=f"http://127.0.0.1:{port}/v1", api_key="k", model="smollm2",
                          sampling={"max_tokens": 80, "temperature": 0.4})
        result = measure(chat, rounds)
        result.update(startup_s=startup, rss_mb=rss_mb(child.pid))
    finally:
        child.terminate()
        child.wait(timeout=10)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--llama-cpp-python", metavar="PYTHON", help="interpreter with llama-cpp-python[server]")
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    rows = {"xllamacpp (in-process)": bench_xllamacpp(args.rounds)}
    if args.llama_cpp_python:
        rows["llama-cpp-python (child)"] = bench_llama_cpp_python(args.llama_cpp_python, args.rounds)
    print(f"SmolLM2-135M-Instruct Q4_1, 2 threads, {args.rounds} replies of <= 80 tokens, {os.cpu_count()} CPUs")
    print(f"| engine | startup s | first token cold s | first token warm p50 s | tokens/s | RSS MB |")
    print("|---|---|---|---|---|---|")
    for name, r in rows.items():
        print(f"| {name} | {r['startup_s']:.2f} | {r['first_token_cold_s']:.3f} | {r['first_token_warm_p50_s']:.3f} "
              f"| {r['tokens_per_s']:.0f} | {r['rss_mb']:.0f} |")


if __name__ == "__main__":
    main()
