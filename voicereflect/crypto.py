"""Encryption at rest for the data folder: a passphrase-derived key and whole-file AES-256-GCM.

The data folder holds one ``key.json`` (0600) with the scrypt parameters, a random salt
and a ``check`` value (a known plaintext encrypted under the derived key), never the
passphrase or the key. :func:`unlock` derives the key again and refuses it unless the
check decrypts, so a wrong passphrase never yields a :class:`Cipher`.

Each encrypted file is ``MAGIC | nonce (12 bytes) | ciphertext and tag (16 bytes)``, with
a fresh random nonce per file. The caller's ``context`` (the file's path relative to the
data folder, see :func:`file_context`) is bound as associated data, so a file copied over
another, or a file from another data folder, fails to decrypt instead of being read as
the wrong session.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import secrets
import sys
import unicodedata
import warnings
from pathlib import Path
from typing import Any, TextIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from voicereflect.errors import (DecryptionError, EncryptionError, KeyFileError, PassphraseUnavailable,
                                 WrongPassphrase)

MAGIC = b"VRENC1"
"""The first bytes of every encrypted file, so it is recognisable (and never parsed as JSON or WAV)."""

KEY_FILE = "key.json"
KEY_FILE_VERSION = 1
PASSPHRASE_ENV = "VOICEREFLECT_PASSPHRASE"

# scrypt cost on the 2-core target machine: 2**15 (32 MiB) takes 0.11-0.12 s idle and ~0.14 s
# under load; 2**16 takes ~0.2 s idle but ~0.29 s (up to 0.33 s) under load, past the 0.1-0.3 s
# budget for unlocking on every command. The values are stored in key.json, so raising them
# later does not break existing keys.
SCRYPT_N = 2**15
SCRYPT_R = 8
SCRYPT_P = 1
# What unlock() accepts from key.json: enough to keep old keys, not enough for a damaged
# or hostile file to make it allocate gigabytes.
_N_RANGE = (2**14, 2**20)
_R_RANGE = (1, 32)
_P_RANGE = (1, 16)

SALT_BYTES = 16
NONCE_BYTES = 12
TAG_BYTES = 16
KEY_BYTES = 32

_CHECK_PLAINTEXT = b"voicereflect key check v1"
# Distinct associated data for the check and for files, so neither can stand in for the other.
_CHECK_AD = MAGIC + b"\x00key-check"
_FILE_AD = MAGIC + b"\x00file\x00"
_PART_AD = MAGIC + b"\x00part\x00"


class Cipher:
    """Encrypts and decrypts whole files with one AES-256-GCM key.

    Get one from :func:`create_key` or :func:`unlock`; the key is never written anywhere.
    Thread-safe: every call uses a fresh random nonce and no shared state.
    """

    __slots__ = ("_aead",)

    def __init__(self, key: bytes) -> None:
        """Wrap a 32-byte key (normally derived from the passphrase by :func:`unlock`)."""
        if len(key) != KEY_BYTES:
            raise ValueError(f"an AES-256 key is {KEY_BYTES} bytes, not {len(key)}")
        self._aead = AESGCM(key)

    def __repr__(self) -> str:
        """Never shows the key."""
        return "Cipher(AES-256-GCM, key hidden)"

    def encrypt(self, plaintext: bytes, *, context: str) -> bytes:
        """Encrypt a whole file's bytes.

        Args:
            plaintext: the file's content.
            context: the file's final path relative to the data folder (see :func:`file_context`);
                the same string must be given to :meth:`decrypt`.

        Returns:
            ``MAGIC``, a random 12-byte nonce, then the ciphertext and its 16-byte tag.
        """
        nonce = secrets.token_bytes(NONCE_BYTES)
        return MAGIC + nonce + self._aead.encrypt(nonce, bytes(plaintext), _file_ad(context))

    def decrypt(self, blob: bytes, *, context: str) -> bytes:
        """Decrypt what :meth:`encrypt` returned for the same ``context``.

        Raises:
            DecryptionError: ``blob`` is not an encrypted file, or was changed, truncated,
                encrypted for another path, or with another key. Nothing is ever returned
                from a blob that fails its integrity check.
        """
        associated = _file_ad(context)
        if not is_encrypted(blob) or len(blob) < len(MAGIC) + NONCE_BYTES + TAG_BYTES:
            raise DecryptionError(
                f"'{context}' is not an encrypted voicereflect file (no {MAGIC.decode()} header, or truncated). "
                "Restore it from a backup or move it aside."
            )
        nonce = blob[len(MAGIC):len(MAGIC) + NONCE_BYTES]
        try:
            return self._aead.decrypt(nonce, blob[len(MAGIC) + NONCE_BYTES:], associated)
        except InvalidTag as exc:
            raise DecryptionError(
                f"'{context}' failed its integrity check: it was changed, damaged, copied from another path, "
                "or encrypted with another key. Restore it from a backup or move it aside."
            ) from exc


    def encrypt_part(self, plaintext: bytes, *, context: str, index: int) -> bytes:
        """Encrypt one part of a file written in parts (a recording streamed while spoken).

        The part's ``index`` is bound with the ``context``, so parts cannot be reordered
        or moved between files. Returns the 12-byte nonce, then the ciphertext and tag.
        """
        nonce = secrets.token_bytes(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, bytes(plaintext), _part_ad(context, index))

    def decrypt_part(self, blob: bytes, *, context: str, index: int) -> bytes:
        """Decrypt what :meth:`encrypt_part` returned; DecryptionError if it fails its check."""
        try:
            return self._aead.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], _part_ad(context, index))
        except (InvalidTag, ValueError) as exc:
            raise DecryptionError(
                f"Part {index} of '{context}' failed its integrity check: it was changed, damaged, "
                "or encrypted with another key. Move the file aside."
            ) from exc


def is_encrypted(blob: bytes) -> bool:
    """True if ``blob`` starts with the encrypted-file header.

    This only says the file looks encrypted; only :meth:`Cipher.decrypt` says it is intact.
    """
    return bytes(blob[:len(MAGIC)]) == MAGIC


def key_path(home: Path) -> Path:
    """Where the key file of the data folder ``home`` lives."""
    return Path(home) / KEY_FILE


def file_context(home: Path, path: Path) -> str:
    """The context to encrypt ``path`` with: its path relative to ``home``, with ``/`` separators.

    Use the file's final name, not the temporary file it is written through; a ``.bak``
    copy is decrypted with the context of the file it is a copy of.
    """
    try:
        return Path(path).relative_to(Path(home)).as_posix()
    except ValueError:
        raise ValueError(f"{path} is not inside the data folder {home}") from None


def create_key(home: Path, passphrase: str) -> Cipher:
    """Set up encryption for a data folder: write a new ``key.json`` (0600) and return its Cipher.

    Args:
        home: the data folder (created 0700 if missing).
        passphrase: the person's passphrase; only a salted scrypt derivation of it is used.

    Raises:
        KeyFileError: ``key.json`` already exists (it is never overwritten).
        EncryptionError: the passphrase is empty.
        StoreError: the file could not be written.
    """
    # Imported here: storage.py will import this module to encrypt what it writes.
    from voicereflect.storage import atomic_write, ensure_dir, store_io_error

    path = key_path(home)
    if not passphrase:
        raise EncryptionError("An empty passphrase would not protect the journal. Choose one and try again.")
    if path.exists():
        raise _key_exists(path)
    salt = secrets.token_bytes(SALT_BYTES)
    cipher = Cipher(_derive(passphrase, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P))
    nonce = secrets.token_bytes(NONCE_BYTES)
    check = nonce + cipher._aead.encrypt(nonce, _CHECK_PLAINTEXT, _CHECK_AD)
    record = {"version": KEY_FILE_VERSION, "kdf": "scrypt", "n": SCRYPT_N, "r": SCRYPT_R, "p": SCRYPT_P,
              "salt": _b64(salt), "check": _b64(check)}
    payload = (json.dumps(record, indent=2) + "\n").encode("ascii")
    try:
        ensure_dir(path.parent)
        atomic_write(path, lambda handle: handle.write(payload), replace=False)
    except FileExistsError:
        raise _key_exists(path) from None
    except OSError as exc:
        raise store_io_error("write", path, exc) from exc
    return cipher


def unlock(home: Path, passphrase: str) -> Cipher:
    """Derive the data folder's key from the passphrase, and return its Cipher only if it is right.

    Runs scrypt with the parameters stored in ``key.json`` (about 0.1-0.3 s with the defaults);
    ``key.json`` is only read, never changed.

    Raises:
        WrongPassphrase: the passphrase does not decrypt the check value.
        KeyFileError: ``key.json`` is missing, unreadable, damaged or from a newer version.
    """
    path = key_path(home)
    record = _read_key_file(path)
    cipher = Cipher(_derive(passphrase, record["salt"], record["n"], record["r"], record["p"]))
    check = record["check"]
    try:
        plaintext = cipher._aead.decrypt(check[:NONCE_BYTES], check[NONCE_BYTES:], _CHECK_AD)
    except InvalidTag:
        plaintext = None
    if plaintext != _CHECK_PLAINTEXT:
        raise WrongPassphrase(
            f"That passphrase does not unlock {path}. Type it again (or fix {PASSPHRASE_ENV}); "
            "without the right one the journal cannot be read."
        )
    return cipher


def passphrase_from_env_or_prompt(*, confirm: bool = False, stdin: TextIO | None = None,
                                  prompt_stream: TextIO | None = None) -> str:
    """The passphrase from ``VOICEREFLECT_PASSPHRASE``, else typed (without echo) at the terminal.

    Args:
        confirm: when prompting, ask twice and require both to match (for :func:`create_key`).
        stdin: only its ``isatty()`` is used, to decide whether a person can type (default ``sys.stdin``).
        prompt_stream: where the prompt goes (default ``sys.stderr``, keeping stdout for data).

    Raises:
        PassphraseUnavailable: the variable is set but empty, there is no terminal to prompt
            at, the terminal cannot hide what is typed, or the typed passphrases are empty or differ.
    """
    from_env = os.environ.get(PASSPHRASE_ENV)
    if from_env is not None:
        if not from_env:
            raise PassphraseUnavailable(f"{PASSPHRASE_ENV} is set but empty. Set it to the passphrase or unset it.")
        return from_env
    stdin = stdin if stdin is not None else sys.stdin
    if stdin is None or not stdin.isatty():
        raise PassphraseUnavailable(
            f"The journal is encrypted and no passphrase was given: "
            f"set {PASSPHRASE_ENV} or run at a terminal to type it."
        )
    passphrase = _prompt("Passphrase: ", prompt_stream)
    if not passphrase:
        raise PassphraseUnavailable("The passphrase is empty. Run the command again and type it.")
    if confirm and _prompt("Passphrase again: ", prompt_stream) != passphrase:
        raise PassphraseUnavailable("The two passphrases differ. Run the command again and type the same one twice.")
    return passphrase


def _prompt(prompt: str, stream: TextIO | None) -> str:
    """getpass, but never its fallback that reads with echo on (it warns first; we refuse)."""
    import getpass

    with warnings.catch_warnings():
        warnings.simplefilter("error", getpass.GetPassWarning)
        try:
            return getpass.getpass(prompt, stream=stream if stream is not None else sys.stderr)
        except getpass.GetPassWarning as exc:
            raise PassphraseUnavailable(
                f"This terminal cannot hide what is typed, so the passphrase was not read: "
                f"set {PASSPHRASE_ENV} instead."
            ) from exc
        except EOFError as exc:
            message = f"No passphrase was typed: set {PASSPHRASE_ENV} or type it at the prompt."
            raise PassphraseUnavailable(message) from exc


def _derive(passphrase: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    # NFC so the same passphrase typed on another system (composed or decomposed accents) matches.
    secret = unicodedata.normalize("NFC", passphrase).encode("utf-8")
    return Scrypt(salt=salt, length=KEY_BYTES, n=n, r=r, p=p).derive(secret)


def _file_ad(context: str) -> bytes:
    if not isinstance(context, str) or not context:
        raise ValueError("context must be the file's path relative to the data folder, not empty")
    return _FILE_AD + context.encode("utf-8", "surrogateescape")


def _part_ad(context: str, index: int) -> bytes:
    return _PART_AD + index.to_bytes(8, "big") + _file_ad(context)


def _read_key_file(path: Path) -> dict[str, Any]:
    """key.json parsed and checked field by field; KeyFileError naming what is wrong."""
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise KeyFileError(
            f"No key file at {path}. If the data folder moved, set VOICEREFLECT_HOME to it; "
            "otherwise set up encryption for this folder first."
        ) from None
    except OSError as exc:
        raise KeyFileError(f"Could not read {path}: {exc.strerror or exc}. Check that you own it.") from exc
    except ValueError as exc:
        raise _damaged_key(path, f"not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise _damaged_key(path, "not a JSON object")
    if isinstance(data.get("version"), int) and data["version"] > KEY_FILE_VERSION:
        version = data["version"]
        raise KeyFileError(f"{path} was written by a newer voicereflect (key file version {version}). Upgrade it.")
    if data.get("version") != KEY_FILE_VERSION or data.get("kdf") != "scrypt":
        raise _damaged_key(path, "unknown version or kdf")
    for name, (low, high) in (("n", _N_RANGE), ("r", _R_RANGE), ("p", _P_RANGE)):
        value = data.get(name)
        if type(value) is not int or not low <= value <= high or (name == "n" and value & (value - 1)):
            raise _damaged_key(path, f"'{name}' is {value!r}")
    for name, size in (("salt", SALT_BYTES), ("check", NONCE_BYTES + len(_CHECK_PLAINTEXT) + TAG_BYTES)):
        try:
            data[name] = base64.b64decode(str(data.get(name)), validate=True)
        except (binascii.Error, ValueError):
            data[name] = b""
        if len(data[name]) != size:
            raise _damaged_key(path, f"'{name}' is not {size} bytes of base64")
    return data


def _damaged_key(path: Path, what: str) -> KeyFileError:
    return KeyFileError(f"{path} is damaged ({what}). Restore it from a backup; without it the journal cannot be read.")


def _key_exists(path: Path) -> KeyFileError:
    return KeyFileError(
        f"{path} already exists, so this data folder already has a key. Unlock it with its passphrase instead."
    )


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")
