"""Benchmark: our WhisperTranscriber against plain faster-whisper, and Piper against pyttsx3.

Speech-to-text runs over the English clips in ``../shared/audio`` (else ``tests/data``):
plain ``WhisperModel(bundled tiny.en, compute_type="int8", cpu_threads=2).transcribe(file)``
with default options, then ``WhisperTranscriber.transcribe_file`` with default settings.
Models are loaded and warmed up before timing; each pipeline's best of ``--rounds`` is kept.
Exits 1 if our pipeline is less accurate or more than 1.5x slower than plain faster-whisper.

Usage: .venv/bin/python benchmarks/transcribe.py [--rounds N]
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path

import jiwer

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from voicereflect.config import SttSettings  # noqa: E402
from voicereflect.stt import WhisperTranscriber, load_audio_file, resolve_model  # noqa: E402
from voicereflect.tts import PiperSynthesizer, Pyttsx3Synthesizer  # noqa: E402

MAX_SLOWDOWN = 1.5
SENTENCES = [
    "What felt hardest about today?",
    "It sounds like that conversation stayed with you for a while afterwards.",
    "Before we stop, is there one small thing you would like to remember from this reflection?",
]


def audio_folder() -> Path:
    shared = REPO.parent / "shared" / "audio"
    return shared if shared.is_dir() else REPO / "tests" / "data"


def english_clips(folder: Path) -> list[Path]:
    """Clips with a reference transcript beside them: jfk, the Harvard list, FLEURS English."""
    names = ["jfk.*", "harvard*.*", "fleurs-en-*.*"]
    clips = [p for pattern in names for p in sorted(folder.glob(pattern)) if p.suffix != ".txt"]
    return [p for p in clips if p.with_suffix(".txt").is_file()]


def normalise(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s']", " ", text.lower()).split())


def corpus_of(path: Path) -> str:
    return path.name.split("-")[0].split(".")[0]


def run_stt(name: str, transcribe: Callable[[Path], str], clips: list[Path], rounds: int) -> dict:
    """Best total time over ``rounds`` and the texts of the last round."""
    transcribe(clips[0])  # warm-up
    best, texts = float("inf"), {}
    for _ in range(rounds):
        total = 0.0
        for clip in clips:
            start = time.perf_counter()
            texts[clip] = transcribe(clip)
            total += time.perf_counter() - start
        best = min(best, total)
    return {"name": name, "time_s": best, "texts": texts}


def wer_by_corpus(texts: dict[Path, str]) -> dict[str, float]:
    groups: dict[str, tuple[list[str], list[str]]] = {}
    for clip, text in texts.items():
        refs, hyps = groups.setdefault(corpus_of(clip), ([], []))
        refs.append(normalise(clip.with_suffix(".txt").read_text(encoding="utf-8")))
        hyps.append(normalise(text))
    result = {corpus: jiwer.wer(refs, hyps) for corpus, (refs, hyps) in groups.items()}
    all_refs = [r for refs, _ in groups.values() for r in refs]
    all_hyps = [h for _, hyps in groups.values() for h in hyps]
    result["all"] = jiwer.wer(all_refs, all_hyps)
    return result


def bench_stt(rounds: int) -> bool:
    from faster_whisper import WhisperModel

    folder = audio_folder()
    clips = english_clips(folder)
    audio_s = sum(load_audio_file(c).duration_s for c in clips)
    print(f"Speech-to-text: {len(clips)} English clips, {audio_s:.1f} s of audio, from {folder}")

    plain_model = WhisperModel(resolve_model("tiny.en", True), compute_type="int8", cpu_threads=2)

    def plain(path: Path) -> str:
        segments, _ = plain_model.transcribe(str(path))
        return " ".join(s.text.strip() for s in segments)

    ours_model = WhisperTranscriber(SttSettings())
    ours_model.load()
    results = [
        run_stt("plain faster-whisper", plain, clips, rounds),
        run_stt("voicereflect WhisperTranscriber", lambda p: ours_model.transcribe_file(p).text, clips, rounds),
    ]
    corpora = list(wer_by_corpus(results[0]["texts"]))
    print(f"{'pipeline':34} {'time s':>7} {'RTF':>6} " + " ".join(f"{'WER ' + c:>12}" for c in corpora))
    for r in results:
        r["wer"] = wer_by_corpus(r["texts"])
        row = f"{r['name']:34} {r['time_s']:7.2f} {r['time_s'] / audio_s:6.3f} "
        print(row + " ".join(f"{r['wer'][c]:12.3f}" for c in corpora))
    plain_r, ours_r = results
    ratio = ours_r["time_s"] / plain_r["time_s"]
    accurate = ours_r["wer"]["all"] <= plain_r["wer"]["all"] + 1e-9
    fast = ratio <= MAX_SLOWDOWN
    print(f"ours/plain time {ratio:.2f}x (limit {MAX_SLOWDOWN}x): {'ok' if fast else 'TOO SLOW'}; "
          f"WER {ours_r['wer']['all']:.3f} vs {plain_r['wer']['all']:.3f}: {'ok' if accurate else 'WORSE'}")
    return accurate and fast


def bench_tts() -> None:
    print(f"\nText-to-speech: {len(SENTENCES)} sentences (RTF = synthesis time / audio length)")
    print(f"{'engine':34} {'time s':>7} {'audio s':>8} {'RTF':>6}")
    for name, synthesizer in [("piper (joe, medium)", PiperSynthesizer()), ("pyttsx3 (espeak-ng)", Pyttsx3Synthesizer())]:
        synthesizer.synthesize("Warm up.")
        start = time.perf_counter()
        audio_s = sum(synthesizer.synthesize(s).duration_s for s in SENTENCES)
        elapsed = time.perf_counter() - start
        print(f"{name:34} {elapsed:7.2f} {audio_s:8.2f} {elapsed / audio_s:6.3f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2, help="timed passes per pipeline (best kept, default 2)")
    args = parser.parse_args()
    ok = bench_stt(args.rounds)
    bench_tts()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
