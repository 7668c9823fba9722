"""Turning encryption at rest on for a data folder, and unlocking it for each command.

A folder is encrypted once it has a ``key.json``; from then on every command needs the
passphrase, whatever config.toml says, because nothing in it can be read without. It
is turned on by ``[storage] encrypt = true``: the next command asks for a new passphrase
(twice), writes the key, and encrypts everything already in the folder.

That first encryption can be cut short by a crash. A marker file (``.encrypting``) lives
from before the key is written until every file is sealed, and the next unlock finishes
the job, so no file is ever left in the clear.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from voicereflect.crypto import create_key, is_encrypted, key_path, unlock
from voicereflect.errors import EncryptionError, KeyFileError
from voicereflect.recording import PARTIAL_SUFFIX, STREAM_MAGIC, pcm16, read_partial, sealed_part, stream_header
from voicereflect.sealing import FileSeal
from voicereflect.storage import atomic_write, backup_path, ensure_dir, fsync_dir, store_io_error

MARKER = ".encrypting"

Passphrase = Callable[[bool], str]
"""Returns the passphrase; called with True when a new one is being chosen (ask twice)."""


def open_data_folder(home: Path, *, encrypt: bool, passphrase: Passphrase) -> FileSeal:
    """The seal for the data folder ``home``: unlocked if it has a key, set up if ``encrypt`` asks.

    Args:
        home: the data folder.
        encrypt: ``[storage] encrypt``; True on a folder without a key creates one.
        passphrase: asked only when the folder is (or becomes) encrypted.

    Raises:
        WrongPassphrase, PassphraseUnavailable, KeyFileError: the folder cannot be unlocked.
    """
    home = Path(home)
    if key_path(home).exists():
        seal = FileSeal(home, unlock(home, passphrase(False)))
        if (home / MARKER).exists():
            encrypt_existing(seal)
        return seal
    if not encrypt:
        return FileSeal(home)
    _check_can_start(home)
    chosen = passphrase(True)
    ensure_dir(home)
    _touch_durably(home / MARKER)
    seal = FileSeal(home, create_key(home, chosen))
    encrypt_existing(seal)
    return seal


def encrypt_existing(seal: FileSeal) -> int:
    """Seal every file of the folder still in the clear; return how many. Safe to run again.

    Runs under the store's lock, so no other process writes meanwhile. Each file is
    replaced atomically; the ``.encrypting`` marker is removed only once all are done.
    """
    from filelock import FileLock

    home = seal.home
    count = 0
    with FileLock(home / ".lock", mode=0o600):
        _remove_stale_temp_files(home)
        for path, sealed_for in _store_files(home):
            try:
                blob = path.read_bytes()
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise store_io_error("read", path, exc) from exc
            if is_encrypted(blob) or blob.startswith(STREAM_MAGIC):
                continue
            if path.name.endswith(PARTIAL_SUFFIX):
                _seal_partial(seal, path)
            else:
                payload = seal.seal(sealed_for, blob)
                _replace(path, payload)
            count += 1
        (home / MARKER).unlink(missing_ok=True)
        fsync_dir(home)
    return count


def _check_can_start(home: Path) -> None:
    """Refuse to turn encryption on while a session runs, or over files sealed with a lost key."""
    from filelock import FileLock, Timeout

    for lock in sorted(home.glob("live/*.lock")):
        try:
            with FileLock(lock, timeout=0, mode=0o600):
                pass
        except Timeout:
            raise EncryptionError(
                f"A session is running ({lock.stem}). Finish it, then run the command again to turn encryption on."
            ) from None
    for path in sorted(home.glob("sessions/*/*.json"))[:1] + sorted(home.glob("index/*.json"))[:1]:
        if is_encrypted(path.read_bytes()[:16]):
            raise KeyFileError(
                f"{key_path(home)} is missing, but the files here are encrypted. Restore key.json from a backup; "
                "a new key could not read them."
            )


def _remove_stale_temp_files(home: Path) -> None:
    """Delete the temporary files a killed write left behind (they may hold plain text)."""
    for pattern in ("sessions/*/.*.tmp", "index/.*.tmp", "audio/*/.*.tmp", "plans/.*.tmp", ".*.tmp"):
        for path in home.glob(pattern):
            path.unlink(missing_ok=True)


def _store_files(home: Path) -> Iterator[tuple[Path, Path]]:
    """Every file that holds what people said, with the path it is sealed for."""
    for pattern in ("sessions/*/*.json", "index/*.json", "plans/*.json"):
        for path in sorted(home.glob(pattern)):
            yield path, path
            yield backup_path(path), path
    for path in sorted(home.glob("index/*.json.damaged-*")) + sorted(home.glob("sessions/*/*.json.damaged-*")):
        yield path, path
    for path in sorted(home.glob("audio/*/*.wav")):
        yield path, path


def _seal_partial(seal: FileSeal, path: Path) -> None:
    """Rewrite a plain streamed recording (a crash's leftover) as a sealed stream, atomically."""
    clip = read_partial(path)
    payload = stream_header(clip.sample_rate) + sealed_part(seal, path, pcm16(clip.samples), 0)
    _replace(path, payload)


def _replace(path: Path, payload: bytes) -> None:
    try:
        atomic_write(path, lambda f: f.write(payload))
    except OSError as exc:
        raise store_io_error("encrypt", path, exc) from exc


def _touch_durably(path: Path) -> None:
    try:
        path.touch(mode=0o600)
        fsync_dir(path.parent)
    except OSError as exc:
        raise store_io_error("write", path, exc) from exc
