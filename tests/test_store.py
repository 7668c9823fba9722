"""Session store: one contract over memory and TinyDB files, then the file store's durability."""

from __future__ import annotations

import errno
import json
import shutil
import multiprocessing
import os
import random
import re
import signal
import stat
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile

from voicereflect.errors import SessionNotFound, StoreError
from voicereflect.storage import store_io_error
from voicereflect.storage import SCHEMA_VERSION
from voicereflect.memory_store import MemorySessionStore
from voicereflect.store import TinyDBSessionStore
from voicereflect.types import AudioClip, Turn

# Forked children start in milliseconds, which keeps the process tests inside a few seconds.
fork = multiprocessing.get_context("fork")

TEXTS = [
    "",
    "  leading and trailing spaces  ",
    "line one\nline two\r\nline three",
    "emoji 😀👍🏽 and a family 👨‍👩‍👧 joined by zero-width joiners",
    "e\u0301 combining accent next to \u00e9 precomposed",
    "中文 العربية עברית русский",
    'quote " backslash \\ tab \t nul \x00 bell \x07',
    "a lone surrogate \ud800 survives",
]


@pytest.fixture(params=["memory", "tinydb"])
def store(request, tmp_path):
    """Every contract test runs on both stores (as tinydb's own tests do over its storages)."""
    if request.param == "memory":
        return MemorySessionStore()
    return TinyDBSessionStore(tmp_path / "home")


@pytest.fixture
def files(tmp_path):
    """The file store over a fresh data folder."""
    return TinyDBSessionStore(tmp_path / "home")


def clip(seconds: float = 0.25) -> AudioClip:
    t = np.arange(int(16_000 * seconds)) / 16_000
    return AudioClip(samples=(0.5 * np.sin(2 * np.pi * 220 * t)).astype(np.float32))


# -- the contract -------------------------------------------------------------------


def test_start_session_gives_sortable_readable_ids(store):
    first = store.start_session("open")
    time.sleep(0.002)
    second = store.start_session("cbt")
    assert re.fullmatch(r"\d{8}-\d{6}-[0-9a-f]{4}", first)
    assert first != second
    listed = store.list_sessions()
    assert [s.id for s in listed] == [first, second]
    assert [s.guide for s in listed] == ["open", "cbt"]
    assert all(s.turns == 0 and s.status == "open" and s.ended_at is None for s in listed)


def test_turns_come_back_in_order_and_whole(store):
    session_id = store.start_session("open")
    turns = [
        Turn(role="assistant", text="What is on your mind?", source="scripted"),
        Turn(role="user", text="A long day.", source="voice", audio="audio/x/0001.wav"),
        Turn(role="assistant", text="What felt hardest?", source="llm", events=({"type": "safety", "rule": "none"},)),
    ]
    assert [store.add_turn(session_id, t) for t in turns] == [0, 1, 2]
    record = store.get_session(session_id)
    assert record.turns == tuple(turns)
    assert record.summary.turns == 3


@pytest.mark.parametrize("text", TEXTS, ids=range(len(TEXTS)))
def test_text_is_never_altered(store, text):
    session_id = store.start_session("open")
    store.add_turn(session_id, Turn(role="user", text=text))
    assert store.get_session(session_id).turns[0].text == text


def test_summary_counts_turns_and_quotes_the_first_user_words(store):
    session_id = store.start_session("open")
    store.add_turn(session_id, Turn(role="assistant", text="Hello, what would you like to reflect on?"))
    store.add_turn(session_id, Turn(role="user", text="one two three four five six seven eight nine ten eleven twelve thirteen"))
    store.add_turn(session_id, Turn(role="user", text="later words"))
    (summary,) = store.list_sessions()
    assert summary.turns == 3
    assert summary.first_words == "one two three four five six seven eight nine ten eleven twelve ..."
    assert store.get_session(session_id).summary == summary


def test_list_matches_each_session(store):
    ids = []
    for n in range(4):
        ids.append(store.start_session(f"guide{n}"))
        time.sleep(0.002)  # oldest first is by start time, to the millisecond
    for n, session_id in enumerate(ids):
        for k in range(n):
            store.add_turn(session_id, Turn(role="user", text=f"session {n} turn {k}"))
    store.end_session(ids[1])
    store.end_session(ids[2], status="interrupted")
    assert store.list_sessions() == [store.get_session(i).summary for i in ids]


def test_end_session_records_status_and_time(store):
    session_id = store.start_session("open")
    store.end_session(session_id, status="interrupted")
    summary = store.get_session(session_id).summary
    assert summary.status == "interrupted"
    assert summary.ended_at and summary.ended_at >= summary.started_at
    with pytest.raises(ValueError):
        store.end_session(session_id, status="open")


@pytest.mark.parametrize("bad_id", ["20990101-000000-abcd", "../../etc/passwd", ""])
def test_unknown_session_names_the_id_and_the_next_step(store, bad_id):
    store.start_session("open")
    calls = [
        lambda: store.get_session(bad_id),
        lambda: store.add_turn(bad_id, Turn(role="user", text="hi")),
        lambda: store.end_session(bad_id),
        lambda: store.save_audio(bad_id, clip()),
    ]
    for call in calls:
        with pytest.raises(SessionNotFound) as info:
            call()
        assert f"'{bad_id}'" in str(info.value)
        assert "voicereflect sessions list" in str(info.value)


def test_save_audio_returns_distinct_relative_paths(store):
    session_id = store.start_session("open")
    first = store.save_audio(session_id, clip())
    second = store.save_audio(session_id, clip())
    store.add_turn(session_id, Turn(role="user", text="hi", audio=first))
    third = store.save_audio(session_id, clip())
    assert len({first, second, third}) == 3
    for relative in (first, second, third):
        assert relative.startswith(f"audio/{session_id}/") and relative.endswith(".wav")
    assert store.get_session(session_id).turns[0].audio == first


# -- the file store ---------------------------------------------------------------


def test_delete_session_removes_it_and_leaves_the_others(store):
    keep, doomed = store.start_session("open"), store.start_session("open")
    store.add_turn(doomed, Turn(role="user", text="delete me"))
    store.save_audio(doomed, AudioClip(samples=np.zeros(160, dtype=np.float32)))
    store.add_turn(keep, Turn(role="user", text="keep me"))
    store.delete_session(doomed)
    assert [s.id for s in store.list_sessions()] == [keep]
    with pytest.raises(SessionNotFound):
        store.get_session(doomed)
    with pytest.raises(SessionNotFound):
        store.delete_session(doomed)
    assert store.get_session(keep).turns[0].text == "keep me"


def test_delete_session_leaves_no_trace_on_disk(files):
    session_id = files.start_session("open")
    files.add_turn(session_id, Turn(role="user", text="a private sentence"))
    files.add_turn(session_id, Turn(role="user", text="another"))  # makes a .bak
    files.save_audio(session_id, AudioClip(samples=np.zeros(160, dtype=np.float32)))
    files.delete_session(session_id)
    leftovers = [p for p in files.home.rglob("*") if session_id in str(p)]
    assert leftovers == []
    assert not any(b"private sentence" in p.read_bytes() for p in files.home.rglob("*") if p.is_file())


def test_layout_is_one_file_per_session_plus_index_shards(files):
    session_id = files.start_session("open")
    files.add_turn(session_id, Turn(role="user", text="hello"))
    home = files.home
    assert files.session_path(session_id) == home / "sessions" / session_id[:4] / f"{session_id}.json"
    assert files.session_path(session_id).is_file()
    assert files.index_path(session_id).parent == home / "index"
    for path in [files.session_path(session_id), files.index_path(session_id)]:
        assert json.loads(path.read_text())["_meta"] == {"1": {"schema": SCHEMA_VERSION}}


def test_data_survives_a_new_store_instance(files):
    session_id = files.start_session("open")
    files.add_turn(session_id, Turn(role="user", text="kept"))
    again = TinyDBSessionStore(files.home)
    assert again.get_session(session_id).turns[0].text == "kept"
    assert again.list_sessions() == files.list_sessions()


@pytest.mark.parametrize("umask", [0o000, 0o022])
def test_folders_are_0700_and_files_0600_whatever_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        store = TinyDBSessionStore(tmp_path / "home")
        session_id = store.start_session("open")
        store.add_turn(session_id, Turn(role="user", text="private"))
        store.save_audio(session_id, clip())
        store.end_session(session_id)
    finally:
        os.umask(old)
    paths = [tmp_path / "home", *(tmp_path / "home").rglob("*")]
    assert any(p.name.endswith(".bak") for p in paths) and any(p.suffix == ".wav" for p in paths)
    for path in paths:
        expected = 0o700 if path.is_dir() else 0o600
        assert stat.S_IMODE(path.stat().st_mode) == expected, path


def test_files_are_valid_json_after_every_add(files):
    session_id = files.start_session("open")
    for n in range(1, 6):
        files.add_turn(session_id, Turn(role="user", text=f"turn {n}"))
        session = json.loads(files.session_path(session_id).read_text())
        index = json.loads(files.index_path(session_id).read_text())
        assert len(session["turns"]) == n
        (row,) = [r for r in index["sessions"].values() if r["id"] == session_id]
        assert row["turns"] == n
        # The last-good copy is the version before this write.
        backup = json.loads(files.session_path(session_id).with_suffix(".json.bak").read_text())
        assert len(backup.get("turns", {})) == n - 1


def damage_empty(path: Path) -> None:
    path.write_bytes(b"")


def damage_truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def damage_garbage(path: Path) -> None:
    path.write_bytes(b"\xff\xfe not json at all")


@pytest.mark.parametrize("damage", [damage_empty, damage_truncate, damage_garbage])
def test_damaged_session_file_is_an_error_naming_it_not_an_empty_session(files, damage):
    session_id = files.start_session("open")
    files.add_turn(session_id, Turn(role="user", text="first"))
    files.add_turn(session_id, Turn(role="user", text="second"))
    path = files.session_path(session_id)
    damage(path)
    broken = path.read_bytes()
    for call in (lambda: files.get_session(session_id), lambda: files.add_turn(session_id, Turn("user", "x"))):
        with pytest.raises(StoreError) as info:
            call()
        assert not isinstance(info.value, SessionNotFound)
        message = str(info.value)
        assert str(path) in message and "damaged" in message
        assert f"A last-good copy is at {path.name}.bak" in message and "sessions repair" in message
    assert path.read_bytes() == broken  # nothing was written over it
    backup = json.loads(Path(f"{path}.bak").read_text())
    assert [t["text"] for t in backup["turns"].values()] == ["first"]


@pytest.mark.parametrize("damage", [damage_empty, damage_truncate, damage_garbage])
def test_repair_rolls_a_damaged_session_back_and_keeps_the_damaged_file(files, damage):
    from voicereflect.repair import repair

    kept, broken = files.start_session("open"), files.start_session("open")
    files.add_turn(kept, Turn(role="user", text="untouched"))
    for text in ("first", "second"):
        files.add_turn(broken, Turn(role="user", text=text))
    path = files.session_path(broken)
    damage(path)
    damaged = path.read_bytes()
    report = repair(files)
    assert report.restored == [path] and report.unrecoverable == [] and report.sessions == 2
    assert [t.text for t in files.get_session(broken).turns] == ["first"]  # the last good version
    assert [t.text for t in files.get_session(kept).turns] == ["untouched"]
    [aside] = path.parent.glob(path.name + ".damaged-*")
    assert aside.read_bytes() == damaged  # never deleted
    assert {r.id: r.turns for r in files.list_sessions()} == {kept: 1, broken: 1}
    assert repair(files).lines() == ["Every session file is readable (2 sessions); the index was rebuilt."]


def test_repair_without_a_good_copy_sets_the_file_aside_and_says_so(files):
    from voicereflect.repair import repair

    session_id = files.start_session("open")
    path = files.session_path(session_id)
    damage_garbage(path)  # its only version: start_session wrote no .bak
    report = repair(files)
    assert report.unrecoverable == [path] and "no usable last-good copy" in report.lines()[0]
    assert files.list_sessions() == [] and list(path.parent.glob(path.name + ".damaged-*"))


def test_damaged_index_shard_is_set_aside_and_rebuilt_from_the_session_files(files):
    session_id = files.start_session("open")
    files.add_turn(session_id, Turn(role="user", text="still here"))
    shard = files.index_path(session_id)
    damage_empty(shard)
    rows = files.list_sessions()
    assert [(r.id, r.turns) for r in rows] == [(session_id, 1)]
    assert list(shard.parent.glob(shard.name + ".damaged-*"))
    damage_empty(shard)
    files.add_turn(session_id, Turn(role="user", text="and again"))  # writing repairs it too
    assert files.list_sessions()[0].turns == 2


def test_files_of_schema_1_are_migrated_on_read_and_rewritten_on_write(tmp_path):
    from voicereflect.types import SessionNotes

    home = tmp_path / "home"
    shutil.copytree(Path(__file__).parent / "data" / "store-v1", home)  # written by the schema 1 code
    store = TinyDBSessionStore(home)
    [row] = store.list_sessions()
    assert (row.first_words, row.flagged, row.tags, row.rating) == ("Work has been hard since the move.", 0, (), None)
    record = store.get_session(row.id)
    assert [t.text for t in record.turns][1] == "Work has been hard since the move." and record.notes == SessionNotes()
    path = store.session_path(row.id)
    assert json.loads(path.read_text())["_meta"]["1"]["schema"] == 1  # reading never writes
    store.annotate(row.id, SessionNotes(flagged=(1,), tags=("work",)))
    assert json.loads(path.read_text())["_meta"]["1"]["schema"] == SCHEMA_VERSION
    assert store.list_sessions()[0].flagged == 1 and store.get_session(row.id).notes.tags == ("work",)


def test_file_from_a_newer_schema_is_refused(files):
    session_id = files.start_session("open")
    path = files.session_path(session_id)
    data = json.loads(path.read_text())
    data["_meta"]["1"]["schema"] = 99
    path.write_text(json.dumps(data))
    with pytest.raises(StoreError, match="newer voicereflect"):
        files.get_session(session_id)


def test_rebuild_index_restores_rows_from_session_files(files):
    ids = [files.start_session("open") for _ in range(3)]
    files.add_turn(ids[0], Turn(role="user", text="hello there"))
    files.end_session(ids[2])
    before = files.list_sessions()
    for shard in (files.home / "index").glob("*.json"):
        shard.unlink()
    assert files.list_sessions() == []
    assert files.rebuild_index() == 3
    assert files.list_sessions() == before


def test_a_row_left_stale_by_a_crash_between_the_two_writes_is_recomputed(files):
    session_id = files.start_session("open")
    files.add_turn(session_id, Turn(role="user", text="first"))
    # The state a kill leaves after the session write and before the row write:
    # the session file has a turn the index row does not count, and the marker remains.
    path = files.session_path(session_id)
    data = json.loads(path.read_text())
    data["turns"]["2"] = Turn(role="assistant", text="second?").to_dict()
    path.write_text(json.dumps(data))
    (files.home / "index" / "pending" / session_id).touch()
    assert files.get_session(session_id).summary.turns == 2

    reopened = TinyDBSessionStore(files.home)
    assert [s.turns for s in reopened.list_sessions()] == [2]
    assert not list((files.home / "index" / "pending").iterdir())


def test_audio_is_16_bit_pcm_wav_on_disk(files):
    session_id = files.start_session("open")
    loud = AudioClip(samples=np.array([0.0, 0.5, -0.5, 1.5, -2.0], dtype=np.float32))
    relative = files.save_audio(session_id, loud)
    path = files.audio_path(relative)
    assert path == files.home / relative and path.is_file()
    info = soundfile.info(str(path))
    assert (info.format, info.subtype, info.samplerate, info.channels) == ("WAV", "PCM_16", 16_000, 1)
    samples, _ = soundfile.read(str(path), dtype="float32")
    np.testing.assert_allclose(samples, [0.0, 0.5, -0.5, 1.0, -1.0], atol=1 / 32_000)
    with pytest.raises(StoreError):
        files.audio_path("../outside.wav")


def test_os_errors_become_store_errors_naming_the_path(tmp_path):
    blocker = tmp_path / "home"
    blocker.write_text("a file where the data folder should be")
    with pytest.raises(StoreError, match=re.escape(str(blocker))):
        TinyDBSessionStore(blocker).start_session("open")

    store = TinyDBSessionStore(tmp_path / "other")
    session_id = store.start_session("open")
    (store.home / "audio").write_text("in the way")
    with pytest.raises(StoreError, match=re.escape(str(store.home / "audio"))):
        store.save_audio(session_id, clip())

    full = store_io_error("write", Path("/data/x.json"), OSError(errno.ENOSPC, "No space left on device"))
    assert str(full) == "Could not write /data/x.json: No space left on device. The disk is full: free some space and try again."


# -- several processes ------------------------------------------------------------


def _writer(home: str, session_id: str, tag: str, count: int, go, out: str) -> None:
    store = TinyDBSessionStore(Path(home))
    go.wait()
    with open(out, "w") as report:
        for n in range(count):
            index = store.add_turn(session_id, Turn(role="user", text=f"{tag} {n}"))
            report.write(f"{index}\n")


def _reader(home: str, go, stop, out: str) -> None:
    store = TinyDBSessionStore(Path(home))
    go.wait()
    reads = 0
    while not stop.is_set():
        for summary in store.list_sessions():
            store.get_session(summary.id)
        reads += 1
    Path(out).write_text(str(reads))


def _run_writers(files, tmp_path, targets: list[str]) -> list[list[int]]:
    go, stop = fork.Event(), fork.Event()
    outs = [tmp_path / f"writer{n}.txt" for n in range(len(targets))]
    writers = [
        fork.Process(target=_writer, args=(str(files.home), sid, f"w{n}", 50, go, str(out)))
        for n, (sid, out) in enumerate(zip(targets, outs))
    ]
    reader = fork.Process(target=_reader, args=(str(files.home), go, stop, str(tmp_path / "reader.txt")))
    for process in [*writers, reader]:
        process.start()
    go.set()
    for process in writers:
        process.join(30)
    stop.set()
    reader.join(30)
    assert [p.exitcode for p in [*writers, reader]] == [0] * (len(writers) + 1)
    assert int((tmp_path / "reader.txt").read_text()) > 0
    return [[int(line) for line in out.read_text().split()] for out in outs]


def test_two_processes_on_different_sessions_lose_nothing(files, tmp_path):
    ids = [files.start_session("open"), files.start_session("open")]
    indices = _run_writers(files, tmp_path, ids)
    for n, session_id in enumerate(ids):
        assert indices[n] == list(range(50))
        assert [t.text for t in files.get_session(session_id).turns] == [f"w{n} {k}" for k in range(50)]
    assert [s.turns for s in files.list_sessions()] == [50, 50]


def test_two_processes_on_one_session_lose_nothing(files, tmp_path):
    session_id = files.start_session("open")
    indices = _run_writers(files, tmp_path, [session_id, session_id])
    assert sorted(indices[0] + indices[1]) == list(range(100))
    texts = [t.text for t in files.get_session(session_id).turns]
    for n in range(2):
        mine = [t for t in texts if t.startswith(f"w{n} ")]
        assert mine == [f"w{n} {k}" for k in range(50)]
        assert [texts[i] for i in indices[n]] == mine
    assert files.list_sessions()[0].turns == 100


def test_threads_sharing_one_store_lose_nothing(files):
    session_id = files.start_session("open")
    indices: dict[str, list[int]] = {}

    def add(tag: str) -> None:
        indices[tag] = [files.add_turn(session_id, Turn(role="user", text=f"{tag} {n}")) for n in range(30)]

    threads = [threading.Thread(target=add, args=(tag,)) for tag in "ab"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(indices["a"] + indices["b"]) == list(range(60))
    assert files.list_sessions()[0].turns == 60


def _adder_until_killed(home: str, ids: list[str], round_no: int, out: str) -> None:
    store = TinyDBSessionStore(Path(home))
    report = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    n = 0
    while True:
        session_id = ids[n % len(ids)]
        index = store.add_turn(session_id, Turn(role="user", text=f"r{round_no} t{n} ✓"))
        # os.write is unbuffered: once it returns, the line survives SIGKILL.
        os.write(report, f"{session_id} {index} r{round_no} t{n} ✓\n".encode())
        if n % 9 == 8:
            store.end_session(session_id, status="interrupted")
        n += 1


def test_kill_9_during_writes_loses_no_committed_turn(files, tmp_path):
    ids = [files.start_session("open"), files.start_session("open")]
    rng = random.Random(1234)
    deadline = time.monotonic() + 12
    committed: list[tuple[str, int, str]] = []
    rounds = 0
    while rounds < 20 and time.monotonic() < deadline:
        out = tmp_path / f"round{rounds}.txt"
        child = fork.Process(target=_adder_until_killed, args=(str(files.home), ids, rounds, str(out)))
        child.start()
        time.sleep(rng.uniform(0.02, 0.25))
        os.kill(child.pid, signal.SIGKILL)
        child.join(10)
        assert child.exitcode == -signal.SIGKILL
        for line in out.read_text(encoding="utf-8").splitlines() if out.exists() else []:
            parts = line.split(" ", 2)
            if len(parts) == 3 and line.endswith("✓"):
                committed.append((parts[0], int(parts[1]), parts[2]))
        rounds += 1

        for path in files.home.rglob("*.json*"):
            if not path.name.startswith("."):  # temp files a kill left behind are ignored
                json.loads(path.read_text())
        records = {sid: files.get_session(sid) for sid in ids}
        for session_id, index, text in committed:
            assert records[session_id].turns[index].text == text
        # A row the kill left half-written is recomputed by the next reader, whole.
        assert files.list_sessions() == [records[sid].summary for sid in ids]
        assert not list((files.home / "index" / "pending").iterdir())
    assert rounds >= 10 and len(committed) > 0


def test_delete_also_removes_copies_repair_set_aside(files):
    from voicereflect.repair import repair

    session_id = files.start_session("open")
    files.add_turn(session_id, Turn(role="user", text="a private sentence"))
    files.add_turn(session_id, Turn(role="user", text="another"))
    path = files.session_path(session_id)
    damage_truncate(path)
    repair(files)
    assert list(path.parent.glob(path.name + ".damaged-*"))
    files.delete_session(session_id)
    assert not any(b"private sentence" in p.read_bytes() for p in files.home.rglob("*") if p.is_file())
