"""A 60-second monologue, transcribed while it is spoken: how soon are its words ready, and as accurate?

English clips from ../shared/audio (FLEURS and JFK, with their reference transcripts) are
joined with 0.7 s pauses into one turn of at least 60 s, and fed frame by frame at the pace
of speech through the real Silero VAD, Endpointer and TurnEndJudge (smart-turn and
faster-whisper tiny.en), as the microphone listener does, with the default pause window.
Every pause is judged unfinished here (a person who is not done), so the monologue is one
turn that ends after 3 s of silence. Each pause is transcribed from 64 ms in; at pauses
of 128 ms or more, pieces of 3 s or more are kept, so when the person stops only the last
piece is left.

Reports the time from the end of the speech (the end of the last frame Silero heard as
voice) to the whole transcript being ready (the words announced at the final pause, or
the turn's text if those were not all of it), and the WER of that transcript against
transcribing the whole recording at once afterwards.

Usage: .venv/bin/python benchmarks/monologue.py [--seconds 60]
"""

from __future__ import annotations

import argparse
import re
import sys
import threading
import time
from pathlib import Path

import jiwer
import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from voicereflect.config import EndpointSettings  # noqa: E402
from voicereflect.smart_turn import SmartTurnModel  # noqa: E402
from voicereflect.stt import WhisperTranscriber, load_audio_file  # noqa: E402
from voicereflect.turn_end import TurnEndJudge  # noqa: E402
from voicereflect.types import SAMPLE_RATE, AudioClip  # noqa: E402
from voicereflect.vad import FRAME_S, Endpointer, SileroScorer, iter_frames  # noqa: E402

GAP_S = 0.7


def normalise(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s']", " ", text.lower()).split())


def monologue(seconds: float) -> tuple[np.ndarray, str, float]:
    """(samples, reference text, where the speech ends) of clips joined until ``seconds`` long."""
    folder = REPO.parent / "shared" / "audio"
    if not folder.is_dir():
        folder = REPO / "tests" / "data"
    names = sorted(folder.glob("fleurs-en-*.ogg")) + [folder / "jfk.flac"]
    parts, texts, total = [], [], 0.0
    for path in names:
        clip = load_audio_file(path).samples
        loud = np.flatnonzero(np.abs(clip) > 0.1 * np.abs(clip).max())  # their own silence: trimmed to 0.1 s
        clip = clip[max(0, loud[0] - SAMPLE_RATE // 10): loud[-1] + SAMPLE_RATE // 10]
        parts += [clip, np.zeros(int(GAP_S * SAMPLE_RATE), np.float32)]
        texts.append(path.with_suffix(".txt").read_text(encoding="utf-8").strip())
        total += len(clip) / SAMPLE_RATE + GAP_S
        if total >= seconds:
            break
    speech_end = total - GAP_S
    parts.append(np.zeros(int(6.0 * SAMPLE_RATE), np.float32))  # the person has stopped
    return np.concatenate(parts), " ".join(texts), speech_end


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    samples, reference, speech_end = monologue(args.seconds)
    transcriber = WhisperTranscriber()
    transcriber.warm()
    announced: list[tuple[float, str]] = []  # (when, the turn's words so far) at each transcribed pause
    # A person who is not done: every pause is judged unfinished (smart-turn can never reach
    # the threshold), so the turn ends only after max_silence_ms, as one 60 s turn.
    judge = TurnEndJudge(model=SmartTurnModel(), transcriber=transcriber, threshold=1.1,
                         on_words=lambda words: announced.append((time.monotonic(), words)))
    settings = EndpointSettings(second_look_ms=3000, max_silence_ms=3000)
    endpointer, scorer = Endpointer(settings, judge=judge), SileroScorer()
    started = time.monotonic()
    event = None
    for index, frame in enumerate(iter_frames(samples)):
        delay = started + (index + 1) * FRAME_S - time.monotonic()
        if delay > 0:
            time.sleep(delay)  # the microphone delivers a frame every 32 ms
        event = endpointer.push(scorer.score(frame), frame) or event
        if event is not None:
            break
    if event is None:
        raise SystemExit("the monologue never ended as a turn")
    last_voiced = len(event.clip.samples) - (event.end_frame - event.last_voiced_frame) * 512
    text = judge.text_of(event.clip.samples, last_voiced)
    text_at = time.monotonic()
    # The person stops at the end of the last voiced frame (the clips' own quiet tails are not speech).
    stopped_at = started + (event.last_voiced_frame + 1) * FRAME_S
    whole_text_at = min([t for t, words in announced if t >= stopped_at and words == text] or [text_at])
    whole_started = time.monotonic()
    whole = transcriber.transcribe(AudioClip(samples)).text
    whole_s = time.monotonic() - whole_started
    threading.Thread(target=judge.close).start()
    print(f"monologue: {speech_end:.1f} s of clips ({len(reference.split())} words), one turn, "
          f"transcribed in pieces at its pauses; Silero heard the last voice {(event.last_voiced_frame + 1) * FRAME_S:.1f} s in")
    print(f"end of speech -> whole transcript ready: {whole_text_at - stopped_at:.2f} s "
          f"({len(announced)} pauses transcribed while it was spoken)")
    print(f"transcribing the whole recording at once instead, after it ends: {whole_s:.2f} s")
    print(f"WER incremental {jiwer.wer(normalise(reference), normalise(text)):.3f}   "
          f"WER whole at once {jiwer.wer(normalise(reference), normalise(whole)):.3f}")


if __name__ == "__main__":
    main()
