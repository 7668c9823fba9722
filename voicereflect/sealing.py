"""The one place the store's bytes pass through on their way to and from the disk.

A :class:`FileSeal` belongs to one data folder. Without a key it passes bytes through
unchanged; with one (``[storage] encrypt = true``) it encrypts every file with AES-256-GCM
(see :mod:`voicereflect.crypto`), binding each to its path inside the folder, so nothing
the person said is ever written in the clear: not the session files, their last-good
``.bak`` copies, the index (which holds each session's first words), nor the recordings.

Recordings streamed while the person speaks are written in parts, each part sealed on
its own (:meth:`FileSeal.seal_part`), so a crash keeps every part that reached the disk.
"""

from __future__ import annotations

from pathlib import Path

from voicereflect.crypto import PASSPHRASE_ENV, Cipher, file_context, is_encrypted
from voicereflect.errors import DecryptionError, EncryptionError


class FileSeal:
    """Encrypts (or, with no cipher, passes through) the files of one data folder.

    Args:
        home: the data folder; a file's context is its path relative to it.
        cipher: the unlocked key, or None for a folder without encryption.
    """

    def __init__(self, home: Path, cipher: Cipher | None = None) -> None:
        self.home = Path(home)
        self._cipher = cipher

    def __repr__(self) -> str:
        """Says whether the folder is encrypted, never the key."""
        return f"FileSeal({self.home}, {'encrypted' if self.encrypted else 'plain'})"

    @property
    def encrypted(self) -> bool:
        """Whether files are encrypted."""
        return self._cipher is not None

    def seal(self, path: Path, data: bytes) -> bytes:
        """The bytes to write at ``path`` for the content ``data``."""
        if self._cipher is None:
            return data
        return self._cipher.encrypt(data, context=self.context(path))

    def unseal(self, path: Path, blob: bytes, *, as_path: Path | None = None) -> bytes:
        """The content of a file read from ``path``.

        Args:
            as_path: the path the file was sealed for, when it is a copy (a ``.bak``).

        Raises:
            DecryptionError: the file was changed or damaged, or is stored unencrypted
                in an encrypted folder (it may have been put there by someone else).
            EncryptionError: the file is encrypted but the folder has no key unlocked.
        """
        sealed_for = as_path or path
        if self._cipher is None:
            if is_encrypted(blob):
                raise EncryptionError(
                    f"{path} is encrypted: this data folder needs its passphrase ({PASSPHRASE_ENV} or typed)."
                )
            return blob
        if not is_encrypted(blob):
            raise DecryptionError(
                f"'{self.context(sealed_for)}' is not encrypted, but this journal is: it was not written "
                "by voicereflect. Move it aside."
            )
        return self._cipher.decrypt(blob, context=self.context(sealed_for))

    def seal_part(self, path: Path, data: bytes, index: int) -> bytes:
        """One sealed part of a file written in parts (encrypted folders only)."""
        return self._require().encrypt_part(data, context=self.context(path), index=index)

    def unseal_part(self, path: Path, blob: bytes, index: int) -> bytes:
        """The content of one part sealed by :meth:`seal_part`; DecryptionError if it fails its check."""
        return self._require().decrypt_part(blob, context=self.context(path), index=index)

    def context(self, path: Path) -> str:
        """The path a file is bound to: relative to the data folder."""
        return file_context(self.home, Path(path))

    def _require(self) -> Cipher:
        if self._cipher is None:
            raise DecryptionError("This data folder is not encrypted, so it has no parts to unseal.")
        return self._cipher
