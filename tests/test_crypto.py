"""Encryption at rest: key file, passphrase, and whole-file AES-GCM, on real files and real scrypt."""

from __future__ import annotations

import base64
import io
import json
import os
import pty
import select
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from voicereflect.crypto import (KEY_FILE, MAGIC, PASSPHRASE_ENV, Cipher, create_key, file_context, is_encrypted,
                                 key_path, passphrase_from_env_or_prompt, unlock)
from voicereflect.errors import (DecryptionError, KeyFileError, PassphraseUnavailable, VoiceReflectError,
                                 WrongPassphrase)

PASSPHRASE = "correct horse battery staple"
CONTEXT = "sessions/2026/20261125-152301-a1b2.json"
PLAINTEXT = json.dumps({"turns": {"1": {"role": "user", "text": "I keep replaying what she said."}}}).encode()
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def keyed_home(tmp_path_factory):
    """A data folder with a key, created once (scrypt is deliberately slow)."""
    home = tmp_path_factory.mktemp("crypto") / "home"
    create_key(home, PASSPHRASE)
    return home


@pytest.fixture(scope="module")
def cipher(keyed_home):
    """The Cipher of ``keyed_home``, unlocked the way the app will."""
    return unlock(keyed_home, PASSPHRASE)


def test_round_trip_through_a_fresh_unlock(keyed_home, cipher):
    blob = cipher.encrypt(PLAINTEXT, context=CONTEXT)
    assert PLAINTEXT not in blob and b"replaying" not in blob
    assert unlock(keyed_home, PASSPHRASE).decrypt(blob, context=CONTEXT) == PLAINTEXT


@pytest.mark.parametrize("plaintext", [b"", b"RIFF" + bytes(range(256)) * 40], ids=["empty", "binary"])
def test_round_trip_of_empty_and_binary_content(cipher, plaintext):
    assert cipher.decrypt(cipher.encrypt(plaintext, context=CONTEXT), context=CONTEXT) == plaintext


def test_wrong_passphrase_is_refused_and_key_file_untouched(keyed_home):
    path = key_path(keyed_home)
    before = (path.read_bytes(), path.stat().st_mtime_ns)
    with pytest.raises(WrongPassphrase) as caught:
        unlock(keyed_home, PASSPHRASE + "!")
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before
    message = str(caught.value)
    assert "\n" not in message and PASSPHRASE_ENV in message and PASSPHRASE not in message
    assert isinstance(caught.value, VoiceReflectError)


def test_a_different_key_cannot_decrypt(tmp_path, cipher):
    other = create_key(tmp_path / "other", "another passphrase")
    with pytest.raises(DecryptionError):
        other.decrypt(cipher.encrypt(PLAINTEXT, context=CONTEXT), context=CONTEXT)


@pytest.mark.parametrize("where", ["header", "nonce", "ciphertext", "tag"])
def test_a_changed_byte_is_refused(cipher, where):
    blob = bytearray(cipher.encrypt(PLAINTEXT, context=CONTEXT))
    index = {"header": 0, "nonce": len(MAGIC) + 3, "ciphertext": len(MAGIC) + 12 + 5, "tag": len(blob) - 1}[where]
    blob[index] ^= 0x01
    with pytest.raises(DecryptionError) as caught:
        cipher.decrypt(bytes(blob), context=CONTEXT)
    assert CONTEXT in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize("cut", [1, 17, 10_000])
def test_a_truncated_file_is_refused(cipher, cut):
    blob = cipher.encrypt(PLAINTEXT, context=CONTEXT)
    with pytest.raises(DecryptionError):
        cipher.decrypt(blob[:-cut], context=CONTEXT)


def test_a_file_swapped_for_another_is_refused(cipher):
    other_context = "sessions/2026/20261126-090000-c3d4.json"
    blob = cipher.encrypt(PLAINTEXT, context=other_context)
    with pytest.raises(DecryptionError) as caught:
        cipher.decrypt(blob, context=CONTEXT)
    assert CONTEXT in str(caught.value)
    assert cipher.decrypt(blob, context=other_context) == PLAINTEXT


def test_same_plaintext_encrypts_differently_each_time(cipher):
    first, second = (cipher.encrypt(PLAINTEXT, context=CONTEXT) for _ in range(2))
    assert first != second
    assert first[len(MAGIC):len(MAGIC) + 12] != second[len(MAGIC):len(MAGIC) + 12]
    assert cipher.decrypt(first, context=CONTEXT) == cipher.decrypt(second, context=CONTEXT) == PLAINTEXT


def test_key_file_is_private_and_holds_no_passphrase(keyed_home):
    path = keyed_home / KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(keyed_home.stat().st_mode) == 0o700
    raw = path.read_bytes()
    record = json.loads(raw)
    assert set(record) == {"version", "kdf", "n", "r", "p", "salt", "check"}
    assert (record["version"], record["kdf"], record["r"], record["p"]) == (1, "scrypt", 8, 1)
    assert record["n"] >= 2**15 and record["n"] & (record["n"] - 1) == 0
    assert len(base64.b64decode(record["salt"])) == 16
    decoded = raw + base64.b64decode(record["salt"]) + base64.b64decode(record["check"])
    for fragment in (PASSPHRASE, "horse", "staple"):
        assert fragment.encode() not in decoded


def test_create_key_refuses_to_overwrite(keyed_home):
    path = key_path(keyed_home)
    before = path.read_bytes()
    with pytest.raises(KeyFileError) as caught:
        create_key(keyed_home, "a new passphrase")
    assert "already" in str(caught.value) and "\n" not in str(caught.value)
    assert path.read_bytes() == before
    unlock(keyed_home, PASSPHRASE)


def test_missing_or_damaged_key_file_says_so(tmp_path):
    with pytest.raises(KeyFileError, match="No key file"):
        unlock(tmp_path, PASSPHRASE)
    create_key(tmp_path, PASSPHRASE)
    record = json.loads(key_path(tmp_path).read_text())
    key_path(tmp_path).write_text(json.dumps(dict(record, n=2**40)))
    with pytest.raises(KeyFileError, match="damaged"):
        unlock(tmp_path, PASSPHRASE)
    key_path(tmp_path).write_text("")
    with pytest.raises(KeyFileError, match="damaged"):
        unlock(tmp_path, PASSPHRASE)


def test_passphrase_from_the_environment_unlocks(keyed_home, monkeypatch):
    monkeypatch.setenv(PASSPHRASE_ENV, PASSPHRASE)
    passphrase = passphrase_from_env_or_prompt(stdin=io.StringIO())
    assert passphrase == PASSPHRASE
    assert unlock(keyed_home, passphrase).decrypt(
        unlock(keyed_home, PASSPHRASE).encrypt(b"x", context=CONTEXT), context=CONTEXT) == b"x"


def test_an_empty_passphrase_variable_is_an_error(monkeypatch):
    monkeypatch.setenv(PASSPHRASE_ENV, "")
    with pytest.raises(PassphraseUnavailable, match="empty"):
        passphrase_from_env_or_prompt(stdin=io.StringIO())


def test_no_terminal_and_no_variable_is_a_one_line_error(monkeypatch):
    monkeypatch.delenv(PASSPHRASE_ENV, raising=False)
    with pytest.raises(PassphraseUnavailable) as caught:
        passphrase_from_env_or_prompt(stdin=io.StringIO("typed but not a terminal\n"))
    message = str(caught.value)
    assert "\n" not in message and PASSPHRASE_ENV in message
    assert isinstance(caught.value, VoiceReflectError)


def test_prompt_at_a_terminal_does_not_echo():
    """A real pseudo-terminal: the typed passphrase must not appear in what the terminal shows."""
    env = {k: v for k, v in os.environ.items() if k != PASSPHRASE_ENV}
    env["PYTHONPATH"] = str(REPO)
    code = "from voicereflect.crypto import passphrase_from_env_or_prompt as p; print('GOT', repr(p()))"
    leader, follower = pty.openpty()
    # A new session has no controlling terminal, so getpass uses the pty on stdin, never ours.
    child = subprocess.Popen([sys.executable, "-c", code], stdin=follower, stdout=follower, stderr=follower,
                             env=env, start_new_session=True)
    os.close(follower)
    try:
        shown = _read_until(leader, b"Passphrase: ")
        os.write(leader, b"s3cret-phrase\n")
        shown += _read_until(leader, None)
    finally:
        child.kill() if child.poll() is None else None
        child.wait(timeout=10)
        os.close(leader)
    assert b"GOT 's3cret-phrase'" in shown
    assert shown.count(b"s3cret-phrase") == 1, shown


def _read_until(fd: int, marker: bytes | None, timeout_s: float = 20.0) -> bytes:
    """Read a pty until ``marker`` appears (or, for None, until the child closes it)."""
    out, deadline = b"", time.monotonic() + timeout_s
    while time.monotonic() < deadline and (marker is None or marker not in out):
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            out += chunk
    return out


def test_is_encrypted_tells_encrypted_files_from_plain_ones(cipher):
    assert is_encrypted(cipher.encrypt(PLAINTEXT, context=CONTEXT))
    assert not is_encrypted(PLAINTEXT)
    assert not is_encrypted(b"RIFF\x24\x00\x00\x00WAVEfmt ")
    assert not is_encrypted(b"")
    with pytest.raises(DecryptionError, match="not an encrypted"):
        cipher.decrypt(PLAINTEXT, context=CONTEXT)


def test_file_context_is_the_path_inside_the_data_folder(tmp_path):
    assert file_context(tmp_path, tmp_path / "audio" / "x" / "0001.wav") == "audio/x/0001.wav"
    with pytest.raises(ValueError):
        file_context(tmp_path / "home", tmp_path / "elsewhere.json")


def test_cipher_never_shows_its_key():
    key = bytes(range(32))
    assert key.hex() not in repr(Cipher(key)) and str(list(key)) not in repr(Cipher(key))
