"""End of speech to first reply audio, measured from the audio itself, through the virtual devices.

A PulseAudio null sink `vr_mix` records the virtual microphone on its left channel and the
virtual speaker on its right (two loopbacks with the same latency), so both sides share one
timeline. The script runs `voicereflect talk --max-turns N` hands-free, speaks N utterances
(Piper) into the microphone, and reports per turn the gap between the last voiced 20 ms of
the person's speech and the first voiced 20 ms of the reply. It also reports startup
(command to "Ready", and to the first "Listening...") and the peak resident memory of the
process (VmHWM).

Usage: .venv/bin/python benchmarks/voice_latency.py [--turns 5] [-- extra talk args]
"""

from __future__ import annotations

import argparse
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
from tests.virtual_audio import _pactl, play_into_mic, virtual_devices  # noqa: E402
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
RATE = 16_000
FRAME = 320  # 20 ms
THRESHOLD = 0.01


def voiced(samples: np.ndarray) -> np.ndarray:
    """Per 20 ms frame: is there sound?"""
    frames = samples[: len(samples) // FRAME * FRAME].reshape(-1, FRAME)
    return np.sqrt((frames**2).mean(axis=1)) > THRESHOLD


def segments(mask: np.ndarray, merge_gap_frames: int) -> list[tuple[int, int]]:
    """Voiced runs (start, end) in frames, merging gaps shorter than ``merge_gap_frames``."""
    runs: list[tuple[int, int]] = []
    for index in np.flatnonzero(mask):
        if runs and index - runs[-1][1] <= merge_gap_frames:
            runs[-1] = (runs[-1][0], index + 1)
        else:
            runs.append((index, index + 1))
    return runs


def latencies(mix: np.ndarray) -> list[float]:
    """For each user segment (left), the gap to the next reply onset (right), in seconds."""
    user = segments(voiced(mix[:, 0]), merge_gap_frames=40)
    reply_mask = voiced(mix[:, 1])
    gaps = []
    for _, end in user:
        onsets = np.flatnonzero(reply_mask[end:])
        if len(onsets):
            gaps.append(onsets[0] * FRAME / RATE)
    return gaps


def peak_rss_mb(pid: int) -> float:
    """VmHWM of a running process, MB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", type=int, default=5)
    parser.add_argument("talk_args", nargs="*", help="extra arguments for `voicereflect talk`")
    args = parser.parse_args()
    piper = PiperSynthesizer()
    clips = []
    for text in (UTTERANCES * 3)[: args.turns]:
        clip = piper.synthesize(text)
        pad = np.zeros(int(0.3 * clip.sample_rate), dtype=np.float32)
        clips.append(AudioClip(np.concatenate([pad, clip.samples, pad]), clip.sample_rate))

    with virtual_devices(), tempfile.TemporaryDirectory() as folder:
        modules = [
            _pactl("load-module", "module-null-sink", "sink_name=vr_mix", "channels=2", f"rate={RATE}").stdout.strip(),
            _pactl("load-module", "module-loopback", "source=vr_mic.monitor", "sink=vr_mix", "channels=1",
                   "channel_map=front-left", "latency_msec=20").stdout.strip(),
            _pactl("load-module", "module-loopback", "source=vr_speaker.monitor", "sink=vr_mix", "channels=1",
                   "channel_map=front-right", "latency_msec=20").stdout.strip(),
        ]
        raw = Path(folder) / "mix.raw"
        try:
            with open(raw, "wb") as out:
                recorder = subprocess.Popen(["parec", "-d", "vr_mix.monitor", "--format=s16le", f"--rate={RATE}",
                                             "--channels=2", "--raw", "--latency-msec=20"], stdout=out)
                time.sleep(2.5)  # an idle null-sink monitor takes up to ~2 s to deliver its first audio
                home = Path(folder) / "home"
                started = time.monotonic()
                talk = subprocess.Popen(
                    [sys.executable, "-m", "voicereflect", "talk", "--max-turns", str(args.turns), *args.talk_args],
                    cwd=REPO, env=cli_env(home, VOICEREFLECT_DEBUG="1"), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE, text=True)
                marks: dict[str, float] = {}
                stage_lines: list[str] = []
                listening = threading.Event()

                def read() -> None:
                    for line in talk.stderr:
                        if line.startswith("[timing]"):
                            stage_lines.append(line.strip())
                        if line.startswith("Ready") and "ready" not in marks:
                            marks["ready"] = time.monotonic() - started
                        if line.startswith("Listening..."):
                            marks.setdefault("listening", time.monotonic() - started)
                            listening.set()

                reader = threading.Thread(target=read, daemon=True)
                reader.start()
                peak = 0.0
                for clip in clips:
                    while not listening.wait(0.2):
                        peak = max(peak, peak_rss_mb(talk.pid))
                        if talk.poll() is not None:
                            raise SystemExit("voicereflect talk exited early")
                    listening.clear()
                    peak = max(peak, peak_rss_mb(talk.pid))
                    play_into_mic(clip)
                while talk.poll() is None:
                    peak = max(peak, peak_rss_mb(talk.pid))
                    time.sleep(0.2)
                time.sleep(0.5)
                recorder.terminate()
                recorder.wait()
        finally:
            for module in reversed(modules):
                _pactl("unload-module", module, check=False)
        mix = np.frombuffer(raw.read_bytes(), dtype="<i2").astype(np.float32).reshape(-1, 2) / 32768.0

    gaps = latencies(mix)
    print(f"turns: {args.turns}   talk args: {' '.join(args.talk_args) or '(defaults)'}")
    print(f"startup: command to ready {marks.get('ready', float('nan')):.2f} s, "
          f"to first listening (after the spoken greeting) {marks.get('listening', float('nan')):.2f} s")
    print("end of speech -> first reply audio, per turn (s): " + ", ".join(f"{g:.2f}" for g in gaps))
    if gaps:
        ordered = sorted(gaps)
        p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
        print(f"p50 {statistics.median(gaps):.2f} s   p95 {p95:.2f} s   max {max(gaps):.2f} s")
    print("inside the program, per turn (end of speech -> transcript, reply text, speaking incl. playback):")
    for line in stage_lines:
        print("  " + line)
    print(f"peak resident memory of voicereflect talk: {peak:.0f} MB")


if __name__ == "__main__":
    main()
