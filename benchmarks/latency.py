"""End of speech to first reply audio, measured from the audio itself, through the virtual devices.

Runs the streaming pipeline (the default) and then the same components naively (`talk
--naive`: a fixed 800 ms silence, whole 30 s transcription, whole reply, then speech), and
prints both and the ratio of their medians. Then (--barge-in N) it talks over N replies
1.5 s into them and reports how long each reply took to go quiet.

A PulseAudio null sink `vr_mix` records the virtual microphone on its left channel and the
virtual speaker on its right (two loopbacks with the same latency), so both sides share one
timeline. The script runs `voicereflect talk --max-turns N` hands-free, speaks N utterances
(Piper) into the microphone, and reports per turn the gap between the last voiced 20 ms of
the person's speech and the first voiced 20 ms of the reply. It also reports startup
(command to "Ready", and to the first "Listening...") and the peak resident memory of the
process (VmHWM).

Usage: .venv/bin/python benchmarks/latency.py [--turns 6] [--no-naive] [--barge-in 3] [-- extra talk args]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.cli_helpers import cli_env  # noqa: E402
from tests.virtual_audio import (  # noqa: E402
    ConversationRecorder,
    barge_in_delays,
    play_into_mic,
    reply_gaps,
    virtual_devices,
)
from voicereflect.tts import PiperSynthesizer  # noqa: E402
from voicereflect.types import AudioClip  # noqa: E402

UTTERANCES = [
    "I had an argument with my sister about our mother.",
    "I felt angry at first, and then mostly sad.",
    "Work has been really stressful this week.",
    "I snapped at a colleague and I feel bad about it.",
    "I want to bring this up with my therapist.",
    "I slept badly and kept replaying the conversation.",
    "My friend cancelled our plans again.",
]
INTERRUPTIONS = [
    "Actually, I would rather talk about my brother.",
    "Sorry, can I say something about work first?",
    "Wait, there is something else on my mind.",
]


def spoken(piper: PiperSynthesizer, text: str) -> AudioClip:
    """A person saying ``text``: Piper speech with 0.3 s of silence on each side."""
    clip = piper.synthesize(text)
    pad = np.zeros(int(0.3 * clip.sample_rate), dtype=np.float32)
    return AudioClip(np.concatenate([pad, clip.samples, pad]), clip.sample_rate)


def peak_rss_mb(pid: int) -> float:
    """VmHWM of a running process, MB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def run_session(clips: list[AudioClip], talk_args: list[str], folder: Path,
                interruptions: list[AudioClip] | None = None) -> dict:
    """Run `voicereflect talk` over the virtual devices, speaking ``clips`` one per turn.

    With ``interruptions``, each clip's reply is talked over 1.5 s into it by the next one.

    Returns the per-turn gaps measured from the recorded audio, the program's own stage
    timings, startup marks and peak memory.
    """
    err_lines: list[str] = []
    with ConversationRecorder() as recorder:
        started = time.monotonic()
        talk = subprocess.Popen(
            # Talked over, a reply may be followed by more turns than one: Ctrl-C ends those runs.
            [sys.executable, "-m", "voicereflect", "talk", "--max-turns",
             str(len(clips) * (10 if interruptions else 1)), *talk_args],
            cwd=REPO, env=cli_env(folder / "home", VOICEREFLECT_DEBUG="1"), stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        said: list[str] = []
        threading.Thread(target=lambda: said.extend(line.rstrip() for line in talk.stdout), daemon=True).start()
        marks: dict[str, float] = {}
        stage_lines: list[str] = []
        listening, thinking = threading.Event(), threading.Event()

        def read() -> None:
            for line in talk.stderr:
                err_lines.append(line.rstrip())
                if line.startswith(("[timing]", "[turn]", "[speak]", "[audio]")):
                    stage_lines.append(line.strip())
                if line.startswith("Ready") and "ready" not in marks:
                    marks["ready"] = time.monotonic() - started
                if line.startswith("Thinking..."):
                    thinking.set()
                if line.startswith("Listening..."):
                    marks.setdefault("listening", time.monotonic() - started)
                    listening.set()

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        peak = 0.0
        try:
            for index, clip in enumerate(clips):
                deadline = time.monotonic() + 90
                while not listening.wait(0.2):
                    peak = max(peak, peak_rss_mb(talk.pid))
                    if talk.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError("voicereflect talk stopped listening:\n" + "\n".join(err_lines[-15:]))
                listening.clear()
                peak = max(peak, peak_rss_mb(talk.pid))
                thinking.clear()
                play_into_mic(clip)
                if interruptions:
                    thinking.wait(60)
                    time.sleep(1.5)  # the reply is playing
                    thinking.clear()
                    play_into_mic(interruptions[index])
                    thinking.wait(60)  # the interruption was heard as a turn; its reply comes next
                    listening.clear()
            # A turn that got no reply (a command, a safety answer) leaves talk listening: Ctrl-C ends it.
            while talk.poll() is None:
                peak = max(peak, peak_rss_mb(talk.pid))
                if listening.wait(0.2):
                    talk.send_signal(signal.SIGINT)
                    talk.wait(30)
        finally:
            if talk.poll() is None:
                talk.kill()
    mix = recorder.mix
    return {"gaps": reply_gaps(mix), "stages": stage_lines, "marks": marks, "peak_mb": peak, "said": said,
            "barge_in": barge_in_delays(mix)}


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def report(name: str, result: dict) -> None:
    gaps, marks = result["gaps"], result["marks"]
    print(f"\n== {name}")
    print(f"startup: command to ready {marks.get('ready', float('nan')):.2f} s, "
          f"to first listening (after the spoken greeting) {marks.get('listening', float('nan')):.2f} s")
    print("end of speech -> first reply audio, per turn (s): " + ", ".join(f"{g:.2f}" for g in gaps))
    if gaps:
        print(f"p50 {statistics.median(gaps):.2f} s   p95 {percentile(gaps, 0.95):.2f} s   max {max(gaps):.2f} s")
    print("inside the program, per turn (s):")
    for line in result["stages"]:
        print("  " + line)
    print("conversation:")
    for line in result["said"]:
        print("  " + line[:300])
    print(f"peak resident memory of voicereflect talk (the LLM server runs inside it): {result['peak_mb']:.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", type=int, default=6)
    parser.add_argument("--no-naive", action="store_true", help="skip the naive pipeline run")
    parser.add_argument("--barge-in", type=int, default=3, metavar="N",
                        help="then talk over N replies and measure how fast they stop (0: skip)")
    parser.add_argument("talk_args", nargs="*", help="extra arguments for `voicereflect talk`")
    args = parser.parse_args()
    piper = PiperSynthesizer()
    clips = [spoken(piper, text) for text in (UTTERANCES * 3)[: args.turns]]
    print(f"turns: {args.turns}   talk args: {' '.join(args.talk_args) or '(defaults)'}   CPUs: {os.cpu_count()}")
    results = {}
    with virtual_devices():
        runs = [("streaming", [])] + ([] if args.no_naive else [("naive", ["--naive"])])
        for name, extra in runs:
            with tempfile.TemporaryDirectory() as folder:
                results[name] = run_session(clips, [*args.talk_args, *extra], Path(folder))
            report(name, results[name])
        if args.barge_in:
            firsts = [spoken(piper, text) for text in UTTERANCES[: args.barge_in]]
            overs = [spoken(piper, text) for text in INTERRUPTIONS[: args.barge_in]]
            with tempfile.TemporaryDirectory() as folder:
                result = run_session(firsts, list(args.talk_args), Path(folder), interruptions=overs)
            delays = result["barge_in"]
            print("\n== barge-in: talking over a reply 1.5 s into it")
            print("person starts -> reply quiet, per interruption (s): " + ", ".join(f"{d:.2f}" for d in delays))
            if delays:
                print(f"p50 {statistics.median(delays):.2f} s   max {max(delays):.2f} s")
            print("conversation:")
            for line in result["said"]:
                print("  " + line[:300])
    if len(results) == 2 and results["streaming"]["gaps"] and results["naive"]["gaps"]:
        fast, slow = statistics.median(results["streaming"]["gaps"]), statistics.median(results["naive"]["gaps"])
        print(f"\nnaive p50 / streaming p50 = {slow:.2f} / {fast:.2f} = {slow / fast:.1f}x")


if __name__ == "__main__":
    main()
