"""Encryption at rest, wired through the store: real sessions, real files, real scrypt and AES-GCM.

The core promise: with ``[storage] encrypt = true`` no word the person said is anywhere on
disk in the clear (session files, their last-good copies, the index, recordings, temporary
files), a wrong passphrase is refused without touching anything, and what was saved
before encryption was turned on gets encrypted too.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest

from tests.cli_helpers import run_cli
from voicereflect.crypto import PASSPHRASE_ENV, create_key
from voicereflect.encryption import MARKER, encrypt_existing, open_data_folder
from voicereflect.errors import DamagedFileError, EncryptionError, WrongPassphrase
from voicereflect.recording import STREAM_MAGIC
from voicereflect.sealing import FileSeal
from voicereflect.store import TinyDBSessionStore
from voicereflect.types import AudioClip, Turn

PASSPHRASE = "blue kettle morning walk"
SECRET_WORDS = ["Marguerite", "lighthouse", "Okonkwo"]
SAID = "I keep thinking about Marguerite and the lighthouse, and what Okonkwo said."


def _files(root: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _plaintext_leaks(root: Path) -> list[str]:
    """Files under ``root`` holding a secret word, or a WAV/JSON file in the clear."""
    leaks = []
    for path, blob in _files(root).items():
        if path.name == "key.json":
            continue
        lowered = blob.lower()
        for word in SECRET_WORDS:
            if word.lower().encode() in lowered or word.lower().encode("utf-16-le") in lowered:
                leaks.append(f"{path}: '{word}'")
        if blob.startswith(b"RIFF") or blob.lstrip().startswith(b"{"):
            leaks.append(f"{path}: not encrypted")
    return leaks


def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(b).hexdigest() for p, b in _files(root).items()}


@pytest.fixture
def encrypted_config(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text("[storage]\nencrypt = true\n")
    return config


@pytest.mark.slow
def test_a_real_text_session_leaves_no_plaintext_anywhere(tmp_path, home, encrypted_config):
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = {PASSPHRASE_ENV: PASSPHRASE, "TMPDIR": str(temp)}
    result = run_cli(home, "--config", str(encrypted_config), "talk", "--text", "--no-speak", "--max-turns", "2",
                     stdin=f"{SAID}\nShe was at the lighthouse again.\n", **env)
    assert result.returncode == 0, result.stderr
    assert (home / "key.json").exists() and not (home / MARKER).exists()
    assert _plaintext_leaks(home) == [] and _plaintext_leaks(temp) == []
    assert not any(word in result.stderr for word in SECRET_WORDS)  # no transcript in the logs

    # With the passphrase everything reads back, even with encrypt = false in config: the key decides.
    listed = run_cli(home, "sessions", "list", "--json", **env)
    assert listed.returncode == 0, listed.stderr
    [row] = json.loads(listed.stdout)
    assert "Marguerite" in row["first_words"]
    shown = json.loads(run_cli(home, "sessions", "show", row["id"], "--json", **env).stdout)
    assert shown["turns"][1]["text"] == SAID

    before = _digest(home)
    wrong = run_cli(home, "sessions", "list", **{PASSPHRASE_ENV: "not the passphrase"})
    assert wrong.returncode == 1 and "does not unlock" in wrong.stderr
    assert len(wrong.stderr.strip().splitlines()) == 1 and "Traceback" not in wrong.stderr
    missing = run_cli(home, "sessions", "list")  # no variable, no terminal
    assert missing.returncode == 1 and PASSPHRASE_ENV in missing.stderr
    assert "Marguerite" not in wrong.stdout + missing.stdout
    assert _digest(home) == before  # refusing never writes


def test_turning_encryption_on_seals_what_was_already_saved(tmp_path):
    home = tmp_path / "home"
    plain = TinyDBSessionStore(home)
    session_id = plain.start_session("open")
    plain.add_turn(session_id, Turn(role="user", text=SAID))
    plain.add_turn(session_id, Turn(role="assistant", text="What stays with you about the lighthouse?"))
    plain.save_audio(session_id, AudioClip(np.full(1600, 0.2, dtype=np.float32)))
    cut_off = plain.open_recording(session_id)  # a crash's leftover: a partial recording
    cut_off.append(np.full(16_000, 0.1, dtype=np.float32))  # past flush_s, so on disk
    cut_off._file.close()
    assert _plaintext_leaks(home)
    rows = plain.list_sessions()

    seal = open_data_folder(home, encrypt=True, passphrase=lambda new: PASSPHRASE)
    assert _plaintext_leaks(home) == []
    assert not (home / MARKER).exists()
    store = TinyDBSessionStore(home, seal=seal)
    assert store.get_session(session_id).turns[0].text == SAID
    assert store.list_sessions() == rows
    [partial] = store.partial_recordings(session_id)
    assert partial.read_bytes().startswith(STREAM_MAGIC)
    assert len(store.read_partial(partial).samples) == 16_000
    assert len(store.read_recording(f"audio/{session_id}/0002.wav").samples) == 1600

    # A plain store (no passphrase) now refuses clearly instead of reading garbage.
    with pytest.raises(EncryptionError, match="passphrase"):
        TinyDBSessionStore(home).get_session(session_id)
    with pytest.raises(WrongPassphrase):
        open_data_folder(home, encrypt=True, passphrase=lambda new: "wrong")


def test_encryption_cut_short_is_finished_by_the_next_unlock(tmp_path):
    home = tmp_path / "home"
    plain = TinyDBSessionStore(home)
    session_id = plain.start_session("open")
    plain.add_turn(session_id, Turn(role="user", text=SAID))
    # What a crash right after the key was written leaves: the marker, the key, files in the clear.
    (home / MARKER).touch()
    create_key(home, PASSPHRASE)
    assert _plaintext_leaks(home)
    seal = open_data_folder(home, encrypt=False, passphrase=lambda new: PASSPHRASE)
    assert seal.encrypted and _plaintext_leaks(home) == [] and not (home / MARKER).exists()
    assert TinyDBSessionStore(home, seal=seal).get_session(session_id).turns[0].text == SAID
    assert encrypt_existing(seal) == 0  # nothing twice


@pytest.fixture(scope="module")
def cipher(tmp_path_factory):
    return create_key(tmp_path_factory.mktemp("key"), PASSPHRASE)


@pytest.fixture
def sealed(tmp_path, cipher):
    home = tmp_path / "home"
    return TinyDBSessionStore(home, seal=FileSeal(home, cipher))


def test_every_store_file_is_sealed_and_bound_to_its_path(sealed):
    first = sealed.start_session("open")
    second = sealed.start_session("open")
    for session_id in (first, second):
        sealed.add_turn(session_id, Turn(role="user", text=SAID))
        sealed.add_turn(session_id, Turn(role="user", text="The lighthouse again."))
    recording = sealed.open_recording(first)
    recording.append(np.full(16_000, 0.3, dtype=np.float32))
    relative = sealed.adopt_recording(first, recording.finish())
    assert _plaintext_leaks(sealed.home) == []
    assert (sealed.home / f"{sealed.session_path(first)}.bak").exists()
    assert len(sealed.read_recording(relative).samples) == 16_000

    # A file copied over another (same key, other path) fails its check instead of being read.
    os.replace(sealed.session_path(second), sealed.session_path(first))
    with pytest.raises(DamagedFileError) as caught:
        sealed.get_session(first)
    assert str(sealed.session_path(first)) in str(caught.value) and "\n" not in str(caught.value)


def test_a_changed_byte_is_reported_as_damage_not_read_as_garbage(sealed):
    session_id = sealed.start_session("open")
    sealed.add_turn(session_id, Turn(role="user", text=SAID))
    path = sealed.session_path(session_id)
    blob = bytearray(path.read_bytes())
    blob[-3] ^= 0x40
    path.write_bytes(bytes(blob))
    with pytest.raises(DamagedFileError, match="integrity"):
        sealed.get_session(session_id)


def test_sessions_repair_rolls_an_encrypted_file_back(tmp_path, home):
    seal = open_data_folder(home, encrypt=True, passphrase=lambda new: PASSPHRASE)
    store = TinyDBSessionStore(home, seal=seal)
    session_id = store.start_session("open")
    store.add_turn(session_id, Turn(role="user", text=SAID))
    store.add_turn(session_id, Turn(role="user", text="A second thought."))
    path = store.session_path(session_id)
    path.write_bytes(path.read_bytes()[:-10])  # cut short

    shown = run_cli(home, "sessions", "show", session_id, **{PASSPHRASE_ENV: PASSPHRASE})
    assert shown.returncode == 1 and "sessions repair" in shown.stderr and "Traceback" not in shown.stderr
    fixed = run_cli(home, "sessions", "repair", **{PASSPHRASE_ENV: PASSPHRASE})
    assert fixed.returncode == 0 and f"Rolled back {path.name}" in fixed.stdout, fixed.stderr
    assert [t.text for t in store.get_session(session_id).turns] == [SAID]
    assert _plaintext_leaks(home) == []


def test_help_never_touches_the_journal(tmp_path, home, encrypted_config):
    TinyDBSessionStore(home).start_session("open")  # an open session housekeeping would recover
    for args in (["prep", "--help"], ["sessions", "list", "-h"]):
        result = run_cli(home, "--config", str(encrypted_config), *args, **{PASSPHRASE_ENV: PASSPHRASE})
        assert result.returncode == 0 and "Usage:" in result.stdout, result.stderr
    assert not (home / "key.json").exists()
    assert TinyDBSessionStore(home).list_sessions()[0].status == "open"


def test_encryption_is_not_turned_on_under_a_running_session_or_over_a_lost_key(tmp_path):
    home = tmp_path / "home"
    store = TinyDBSessionStore(home)
    session_id = store.start_session("open")
    with store.live(session_id):
        with pytest.raises(EncryptionError, match="session is running"):
            open_data_folder(home, encrypt=True, passphrase=lambda new: PASSPHRASE)
    assert not (home / "key.json").exists()
    open_data_folder(home, encrypt=True, passphrase=lambda new: PASSPHRASE)
    (home / "key.json").unlink()  # lost
    with pytest.raises(EncryptionError, match="missing, but the files here are encrypted"):
        open_data_folder(home, encrypt=True, passphrase=lambda new: "a new passphrase")
    assert not (home / "key.json").exists()


def test_stale_temporary_files_are_removed_when_encryption_starts(tmp_path):
    home = tmp_path / "home"
    store = TinyDBSessionStore(home)
    session_id = store.start_session("open")
    stale = store.session_path(session_id).with_name(f".{session_id}.json.123-abcd.tmp")
    stale.write_text(SAID)  # what a kill -9 inside a write leaves
    open_data_folder(home, encrypt=True, passphrase=lambda new: PASSPHRASE)
    assert not stale.exists() and _plaintext_leaks(home) == []
