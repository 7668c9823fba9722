"""Crash recovery: recordings streamed while speaking survive kill -9 and come back as words."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile

from voicereflect.recording import PartialRecording, repair_wav
from voicereflect.recovery import cut_off_sessions, recover
from voicereflect.store import TinyDBSessionStore
from voicereflect.stt import load_audio_file
from voicereflect.types import AudioClip, Turn

DATA = Path(__file__).parent / "data"
spawn = multiprocessing.get_context("spawn")  # fork would copy the locks of threads other tests started


def test_a_recording_cut_off_before_finish_is_repaired_whole(tmp_path):
    samples = np.sin(np.linspace(0, 400, 16_000)).astype(np.float32) * 0.5
    recording = PartialRecording(tmp_path / "0001.partial.wav", flush_s=0.1)
    recording.append(samples)
    recording._file.close()  # what a kill leaves: samples on disk, sizes of 0 in the header
    assert soundfile.info(str(tmp_path / "0001.partial.wav")).frames == 0
    assert repair_wav(tmp_path / "0001.partial.wav") == 16_000
    heard, rate = soundfile.read(str(tmp_path / "0001.partial.wav"), dtype="float32")
    assert rate == 16_000
    np.testing.assert_allclose(heard, samples, atol=1 / 32_000)


def test_a_finished_recording_reads_back_and_a_discarded_one_is_gone(tmp_path):
    recording = PartialRecording(tmp_path / "a.partial.wav")
    recording.append(np.full(800, 0.25, dtype=np.float32))
    path = recording.finish()
    assert soundfile.info(str(path)).frames == 800
    assert path.stat().st_mode & 0o777 == 0o600
    other = PartialRecording(tmp_path / "b.partial.wav")
    other.discard()
    assert not (tmp_path / "b.partial.wav").exists()


def test_repair_refuses_a_file_it_did_not_write(tmp_path):
    stranger = tmp_path / "x.wav"
    stranger.write_bytes(b"not a wav at all, just bytes" * 4)
    with pytest.raises(ValueError):
        repair_wav(stranger)


class _Stt:
    """A stand-in transcriber that reports how much audio it was given."""

    def __init__(self) -> None:
        self.clips: list[AudioClip] = []

    def transcribe(self, clip: AudioClip):
        from voicereflect.types import Transcript

        self.clips.append(clip)
        return Transcript(text=f"{len(clip.samples)} samples", language="en", duration_s=len(clip.samples) / 16_000)


PASSPHRASE = "a passphrase for tests"


@pytest.fixture(scope="module")
def key(tmp_path_factory):
    """One key for the module's encrypted stores (scrypt is deliberately slow): (its folder, its Cipher)."""
    from voicereflect.crypto import create_key

    folder = tmp_path_factory.mktemp("key")
    return folder, create_key(folder, PASSPHRASE)


@pytest.fixture(params=["plain", "encrypted"])
def store(request, tmp_path, key):
    """A file store, plain or encrypted (``key_folder`` says where its key is, for a child process)."""
    home = tmp_path / "home"
    store = _store(home, key[1] if request.param == "encrypted" else None)
    store.key_folder = str(key[0]) if request.param == "encrypted" else ""
    return store


def _store(home: Path, cipher) -> TinyDBSessionStore:
    from voicereflect.sealing import FileSeal

    return TinyDBSessionStore(home, seal=FileSeal(home, cipher))


def _speak_until_killed(home: str, key_folder: str, session_id: str, progress: str) -> None:
    from voicereflect.crypto import unlock

    store = _store(Path(home), unlock(Path(key_folder), PASSPHRASE) if key_folder else None)
    speech = load_audio_file(DATA / "jfk.flac").samples  # 16 kHz mono
    with store.live(session_id):
        recording = store.open_recording(session_id)
        for start in range(0, len(speech), 512):  # 32 ms frames, ten times faster than real time
            recording.append(speech[start:start + 512])
            Path(progress + ".tmp").write_text(str(start + 512))
            os.replace(progress + ".tmp", progress)  # never seen half-written by the parent
            time.sleep(0.0032)
        recording.finish()
        time.sleep(60)


def test_kill_9_during_speech_loses_at_most_half_a_second(tmp_path, store):
    session_id = store.start_session("open")
    store.add_turn(session_id, Turn(role="assistant", text="What's on your mind?"))
    progress = tmp_path / "progress"
    child = spawn.Process(target=_speak_until_killed, args=(str(store.home), store.key_folder, session_id, str(progress)))
    child.start()
    deadline = time.monotonic() + 60  # a spawned child imports numpy, PyAV... before it speaks
    while time.monotonic() < deadline and int((progress.read_text() or 0) if progress.exists() else 0) < 16_000 * 6:
        time.sleep(0.01)
    assert store.is_live(session_id)
    assert cut_off_sessions(store) == []  # a running session is left alone
    os.kill(child.pid, signal.SIGKILL)
    child.join(10)
    spoken = int(progress.read_text())

    assert cut_off_sessions(store) == [session_id]
    stt = _Stt()
    report = recover(store, lambda: stt)
    assert report.sessions == [session_id] and report.turns == 1
    kept = len(stt.clips[0].samples)
    assert spoken - 8_000 <= kept <= spoken, (spoken, kept)
    record = store.get_session(session_id)
    assert record.summary.status == "interrupted"
    turn = record.turns[-1]
    assert (turn.role, turn.source, turn.events[0]["type"]) == ("user", "recovered", "recovered")
    assert len(store.read_recording(turn.audio).samples) == kept
    assert store.partial_recordings(session_id) == []
    assert recover(store, lambda: stt).sessions == []  # nothing twice


@pytest.mark.slow
def test_words_spoken_before_a_kill_are_transcribed_by_recovery(store):
    from voicereflect.config import Settings
    from voicereflect.stt import WhisperTranscriber

    session_id = store.start_session("open")
    speech = load_audio_file(DATA / "jfk.flac").samples  # 16 kHz mono
    recording = store.open_recording(session_id)
    recording.append(speech[: 16_000 * 6])
    recording._file.close()  # killed: header never finished
    report = recover(store, lambda: WhisperTranscriber(Settings().stt))
    text = store.get_session(session_id).turns[-1].text.lower()
    assert report.turns == 1 and "fellow americans" in text, text


def test_a_session_without_leftovers_is_just_marked_interrupted(tmp_path):
    store = TinyDBSessionStore(tmp_path / "home")
    session_id = store.start_session("open")
    report = recover(store, None)
    assert report.sessions == [session_id] and report.turns == 0
    assert store.get_session(session_id).summary.status == "interrupted"
    assert "Recovered 1" in report.summary()


def test_without_speech_to_text_the_recording_waits_for_a_later_run(tmp_path):
    store = TinyDBSessionStore(tmp_path / "home")
    session_id = store.start_session("open")
    recording = store.open_recording(session_id)
    recording.append(np.full(1600, 0.1, dtype=np.float32))
    recording.finish()
    report = recover(store, None)
    assert report.sessions == [] and len(report.untranscribed) == 1
    assert store.get_session(session_id).summary.status == "open"
    assert len(store.partial_recordings(session_id)) == 1


def test_a_recording_adopted_just_before_a_crash_is_transcribed(store):
    """The crash came between adopting the streamed recording and saving its turn."""
    session_id = store.start_session("open")
    recording = store.open_recording(session_id)
    recording.append(np.full(16_000, 0.2, dtype=np.float32))
    store.adopt_recording(session_id, recording.finish())
    stt = _Stt()
    report = recover(store, lambda: stt)
    turn = store.get_session(session_id).turns[-1]
    assert report.turns == 1 and turn.source == "recovered" and turn.text == "16000 samples"
    assert turn.audio == f"audio/{session_id}/0000.wav"


def test_a_recording_whose_words_were_saved_without_it_is_not_recovered_twice(store):
    """keep_audio = false: the crash came after the turn was saved, before its recording was deleted."""
    session_id = store.start_session("open")
    recording = store.open_recording(session_id)
    recording.append(np.full(16_000, 0.2, dtype=np.float32))
    path = recording.finish()
    store.add_turn(session_id, Turn(role="user", text="saved words", source="voice",
                                    events=({"type": "recording_not_kept", "file": path.name},)))
    report = recover(store, lambda: _Stt())
    assert report.turns == 0 and [t.text for t in store.get_session(session_id).turns] == ["saved words"]
    assert not path.exists()
