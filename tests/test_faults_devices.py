"""Faults in the middle of a spoken session, with every real part: nothing said is ever lost.

Each test runs `voicereflect talk` hands-free over the virtual PulseAudio devices, talks
into the microphone, and then breaks something at a chosen moment: ``kill -9`` while the
person is still speaking, while their words are being transcribed, while the reply is
being written, or the microphone disappearing mid-sentence. What was said must then be in
the session (after `voicereflect sessions recover` where the process died).

The embedded LLM runs inside the `talk` process (xllamacpp), so killing that one process
kills the whole program; the tests check no child is left.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import numpy as np
import pytest
import soundfile

from tests.cli_helpers import run_cli, session_json, sessions_json
from tests.test_hands_free import RunningTalk, normalise, piper, spoken, wer, whisper  # noqa: F401  (fixtures)
from tests.virtual_audio import MIC_SINK
from voicereflect.recording import HEADER_BYTES, PARTIAL_SUFFIX
from voicereflect.store import TinyDBSessionStore
from voicereflect.stt import load_audio_file
from voicereflect.types import SAMPLE_RATE, AudioClip

pytestmark = [pytest.mark.slow, pytest.mark.device]

DATA = Path(__file__).parent / "data"
STARTUP_S = 240  # loading every model on a busy 2-core machine has taken over 90 s
FIRST_LINE = "I had an argument with my sister about our mother and I keep thinking about it."
LONG_LINE = (  # 11 s of Piper speech with short pauses: one turn
    "This morning I walked to the station in the rain and missed my train by a minute. "
    "I sat on a cold bench and watched the clouds for almost an hour. "
    "Then I called my brother and we talked about our father's old garden."
)
KILL_AT_S = 7.0
"""How far into the 11 s of real speech the first test kills the program."""

T = TypeVar("T")


def wait_until(check: Callable[[], T], timeout: float, what: str) -> T:
    """Poll ``check`` every 20 ms until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while not (result := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.02)
    return result


def recall(reference: str, hypothesis: str) -> float:
    """The share of the reference's words that the hypothesis contains."""
    heard = set(normalise(hypothesis).split())
    words = normalise(reference).split()
    return sum(word in heard for word in words) / max(len(words), 1)


def at_speaking_level(clip: AudioClip, peak: float = 0.5) -> AudioClip:
    """The clip as a microphone at a normal distance gives it (FLEURS files are recorded ~30 dB lower)."""
    return AudioClip(clip.samples * (peak / float(np.abs(clip.samples).max())), clip.sample_rate)


class Playback:
    """A clip playing into a virtual microphone in the background, timed from its start."""

    def __init__(self, clip: AudioClip, folder: Path, sink: str = MIC_SINK) -> None:
        path = folder / f"playback-{time.monotonic_ns()}.wav"
        soundfile.write(path, clip.samples, clip.sample_rate, subtype="PCM_16")
        self.process = subprocess.Popen(["paplay", "-d", sink, str(path)], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE)
        self.started = time.monotonic()

    def elapsed_s(self) -> float:
        """Seconds since playback started."""
        return time.monotonic() - self.started

    def wait(self, timeout: float = 60) -> None:
        """Block until the whole clip has played."""
        assert self.process.wait(timeout=timeout) == 0, self.process.stderr.read()

    def stop(self) -> None:
        """Stop playing (the person stops talking)."""
        self.process.kill()
        self.process.wait(timeout=10)


@pytest.fixture
def processes() -> Iterator[list]:
    """Talk runs and playbacks to kill at teardown, so a failing test leaves nothing running."""
    started: list = []
    yield started
    for item in started:
        process = item.process
        if process.poll() is None:
            process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=10)
        if isinstance(item, RunningTalk):
            item.finish(timeout=10)


def start_talk(home: Path, processes: list, *args: str, **env: str) -> RunningTalk:
    """`voicereflect talk` hands-free, returned once it is listening for the first turn.

    OpenBLAS gets one thread: with its default (one per core) the safety check's embedding
    warm-up, running beside llama.cpp's threads on two busy cores, has taken minutes
    instead of seconds; these tests are about faults after startup.
    """
    talk = RunningTalk(home, *args, **{"OPENBLAS_NUM_THREADS": "1", **env})
    processes.append(talk)
    talk.wait_for("Listening...", timeout=STARTUP_S)
    return talk


def long_turns(folder: Path) -> str:
    """A config whose turns end only after 1.5 s of silence: for tests of one long spoken turn.

    By default a finished sentence followed by a 200 ms pause may end a turn; these tests are
    about faults in the middle of a long turn, not about where turns end.
    """
    config = folder / "long-turns.toml"
    config.write_text("[endpointing]\nsilence_ms = 1500\nsecond_look_ms = 1500\n")
    return str(config)


def play(processes: list, clip: AudioClip, folder: Path, sink: str = MIC_SINK) -> Playback:
    playback = Playback(clip, folder, sink)
    processes.append(playback)
    return playback


def descendants(pid: int) -> list[int]:
    """Every process started by ``pid``, however deep."""
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            for child in map(int, (task / "children").read_text().split()):
                found += [child, *descendants(child)]
    return found


def kill_9(talk: RunningTalk) -> None:
    """SIGKILL the program, as a crash or power loss would stop it: no cleanup runs."""
    children = descendants(talk.process.pid)
    os.kill(talk.process.pid, signal.SIGKILL)
    for child in children:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signal.SIGKILL)
    talk.finish(timeout=30)
    assert talk.process.returncode == -signal.SIGKILL
    assert children == [], "the program has child processes: kill its process group instead"


def partials(home: Path) -> list[Path]:
    """Recordings streamed while the person spoke that are not (yet) a turn's."""
    return sorted(home.glob(f"audio/*/*{PARTIAL_SUFFIX}"))


def finished(path: Path) -> bool:
    """Whether the listener has ended the utterance and written the WAV header's real sizes."""
    with open(path, "rb") as handle:
        header = handle.read(HEADER_BYTES)
    return len(header) == HEADER_BYTES and header[40:44] != b"\0\0\0\0"


def only_session(home: Path) -> str:
    """The id of the one session in the data folder, from its file (no command runs recovery)."""
    [path] = [p for p in home.glob("sessions/*/*.json")]
    return path.stem


def turns_on_disk(home: Path, session_id: str) -> list:
    """The session's turns as the killed process left them (read directly: nothing is recovered)."""
    return list(TinyDBSessionStore(home).get_session(session_id).turns)


def recover(home: Path) -> dict:
    """Run `voicereflect sessions recover` and return the one session, as `sessions show --json` prints it."""
    result = run_cli(home, "sessions", "recover")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Recovered 1 interrupted session" in result.stdout + result.stderr, result.stdout + result.stderr
    assert partials(home) == [], "a streamed recording was left behind after recovery"
    return session_json(home, only_session(home))


def users(record: dict) -> list[dict]:
    return [turn for turn in record["turns"] if turn["role"] == "user"]


def test_kill_9_while_speaking_keeps_the_words_said_so_far(virtual_audio, tmp_path, whisper, processes):
    home = tmp_path / "home"
    # Real speech (FLEURS): one 10.5 s reading, no pause of 1.5 s (see long_turns).
    speech = at_speaking_level(load_audio_file(DATA / "fleurs-en-002.ogg"))
    talk = start_talk(home, processes, VOICEREFLECT_CONFIG=long_turns(tmp_path))
    playback = play(processes, speech, tmp_path)
    wait_until(lambda: partials(home), 10, "the program to start recording the speech")
    time.sleep(max(0.0, KILL_AT_S - playback.elapsed_s()))
    killed_at_s = playback.elapsed_s()
    kill_9(talk)
    playback.stop()
    assert [t.role for t in turns_on_disk(home, only_session(home))] == ["assistant"]  # only the greeting

    record = recover(home)
    assert record["status"] == "interrupted"
    [turn] = users(record)
    assert turn["source"] == "recovered" and turn["events"][0]["type"] == "recovered", turn
    # Lost: at most the last flush (0.5 s) plus the audio still on its way; the speech starts 0.4 s in.
    kept_s = soundfile.info(str(home / turn["audio"])).duration
    assert killed_at_s - 2.5 < kept_s < killed_at_s, (killed_at_s, kept_s)
    said = whisper.transcribe(AudioClip(speech.samples[: int((killed_at_s - 1.5) * SAMPLE_RATE)])).text
    assert len(normalise(said).split()) >= 8, said
    assert recall(said, turn["text"]) >= 0.8, (said, turn["text"])
    assert "byron" not in normalise(turn["text"]), turn["text"]  # the last word came after the kill


def test_kill_9_while_transcribing_keeps_the_words_and_everything_before(virtual_audio, tmp_path, piper,
                                                                         processes):
    home = tmp_path / "home"
    talk = start_talk(home, processes, VOICEREFLECT_CONFIG=long_turns(tmp_path))
    play(processes, spoken(piper, FIRST_LINE), tmp_path).wait()
    talk.wait_for("Thinking...", timeout=60)
    talk.wait_for("Listening...", timeout=60)  # the first turn is saved and answered
    play(processes, spoken(piper, LONG_LINE), tmp_path)
    # The utterance has ended (its recording is complete) but its words are not known yet.
    wait_until(lambda: [p for p in partials(home) if finished(p)], 60, "the end of the long utterance")
    kill_9(talk)
    before = turns_on_disk(home, only_session(home))
    assert [t.role for t in before] == ["assistant", "user", "assistant"], "killed after the turn was saved"

    record = recover(home)
    assert record["status"] == "interrupted"
    assert [t["role"] for t in record["turns"]] == ["assistant", "user", "assistant", "user"]
    assert record["turns"][:3] == [t.to_dict() for t in before]  # nothing earlier changed
    first, second = users(record)
    assert first["source"] == "voice" and wer(FIRST_LINE, first["text"]) < 0.25, first
    assert second["source"] == "recovered" and wer(LONG_LINE, second["text"]) < 0.25, second
    assert (home / first["audio"]).is_file() and (home / second["audio"]).is_file()


def test_kill_9_while_the_reply_is_written_keeps_the_turn_and_talk_starts_again(virtual_audio, tmp_path, piper,
                                                                                processes):
    home = tmp_path / "home"
    talk = start_talk(home, processes)
    play(processes, spoken(piper, FIRST_LINE), tmp_path).wait()
    talk.wait_for("Thinking...", timeout=60)  # printed once the person's turn is committed
    kill_9(talk)
    session_id = only_session(home)
    before = turns_on_disk(home, session_id)
    assert [t.role for t in before] == ["assistant", "user"], "the kill came after the reply was saved"

    record = recover(home)
    assert record["status"] == "interrupted"
    assert record["turns"] == [t.to_dict() for t in before]
    [turn] = users(record)
    assert turn["source"] == "voice" and wer(FIRST_LINE, turn["text"]) < 0.25, turn
    assert (home / turn["audio"]).is_file()

    # The next session starts, hears and answers as usual, and leaves the old one as it was.
    talk = start_talk(home, processes, "--max-turns", "1")
    play(processes, spoken(piper, "I slept much better last night."), tmp_path).wait()
    talk.finish(timeout=120)
    assert talk.process.returncode == 0, "".join(talk.stderr)
    old, new = sessions_json(home)
    assert old["id"] == session_id and session_json(home, session_id) == record
    new_record = session_json(home, new["id"])
    assert new_record["status"] == "complete"
    assert [t["role"] for t in new_record["turns"]] == ["assistant", "user", "assistant"]
    assert wer("I slept much better last night.", users(new_record)[0]["text"]) < 0.25, new_record


@pytest.fixture
def own_microphone() -> Iterator[str]:
    """A virtual microphone for one test (a null sink), so unplugging it leaves vr_mic alone."""
    if shutil.which("pacmd") is None:
        pytest.skip("pacmd not installed (it comes with pulseaudio)")
    name = "vr_unplug_mic"
    module = subprocess.run(["pactl", "load-module", "module-null-sink", f"sink_name={name}"],
                            capture_output=True, text=True, check=True).stdout.strip()
    yield name
    subprocess.run(["pactl", "unload-module", module], capture_output=True)  # already gone if it was unplugged


def source_outputs_of(pid: int) -> list[str]:
    """Indexes of the recording streams that process ``pid`` has open in PulseAudio."""
    listing = subprocess.run(["pactl", "list", "source-outputs"], capture_output=True, text=True, check=True).stdout
    return [block.split("\n", 1)[0].strip() for block in listing.split("Source Output #")[1:]
            if re.search(rf'application\.process\.id = "{pid}"', block)]


def unplug(microphone: str, pid: int) -> None:
    """Remove the microphone with nowhere for the program's stream to go.

    PulseAudio moves a removed source's streams to another source when it can
    (``rescue-streams``, where the program simply goes on hearing that one); here the
    server ends the stream first, as it does when nothing can take it over (and as a
    USB microphone opened directly through ALSA fails), then removes the device.
    """
    streams = source_outputs_of(pid)
    assert streams, "the program has no recording stream open in PulseAudio"
    for index in streams:
        subprocess.run(["pacmd", "kill-source-output", index], capture_output=True, check=True)
    module = next(line.split("\t")[0] for line in subprocess.run(
        ["pactl", "list", "short", "modules"], capture_output=True, text=True, check=True).stdout.splitlines()
        if f"sink_name={microphone}" in line)
    subprocess.run(["pactl", "unload-module", module], capture_output=True, check=True)


def test_unplugging_the_microphone_mid_sentence_is_one_line_and_keeps_the_words(virtual_audio, tmp_path, piper,
                                                                                  processes, own_microphone):
    home = tmp_path / "home"
    talk = start_talk(home, processes, PULSE_SOURCE=f"{own_microphone}.monitor")
    play(processes, spoken(piper, FIRST_LINE), tmp_path, own_microphone).wait()
    talk.wait_for("Thinking...", timeout=60)
    talk.wait_for("Listening...", timeout=60)
    playback = play(processes, spoken(piper, LONG_LINE), tmp_path, own_microphone)
    three_seconds = HEADER_BYTES + 3 * SAMPLE_RATE * 2
    wait_until(lambda: any(p.stat().st_size >= three_seconds for p in partials(home)), 30,
               "three seconds of the long utterance on disk")
    unplug(own_microphone, talk.process.pid)
    playback.stop()
    talk.finish(timeout=120)

    stderr = "".join(talk.stderr)
    assert talk.process.returncode == 1, stderr
    assert "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("voicereflect:")]
    assert len(errors) == 1 and "microphone" in errors[0] and "--list-devices" in errors[0], stderr
    record = session_json(home, only_session(home))
    assert record["status"] == "interrupted"
    assert partials(home) == [], "the words spoken before the microphone went are only in a stray recording"
    first, cut_short = users(record)
    assert first["source"] == "voice" and wer(FIRST_LINE, first["text"]) < 0.25, first
    # About three seconds were heard: "This morning I walked to the station in the rain ..."
    assert recall("This morning I walked to the station", cut_short["text"]) >= 0.8, cut_short
    assert "garden" not in normalise(cut_short["text"]), cut_short
    assert (home / cut_short["audio"]).is_file()
