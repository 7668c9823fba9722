"""Recordings written while the person speaks, so a crash loses at most about a second.

A :class:`PartialRecording` is a 16-bit PCM WAV file opened when speech starts. Its header
is written first with sizes of 0; samples are appended as they arrive and flushed to the
disk every ``flush_s``; :meth:`PartialRecording.finish` writes the real sizes. A file a
crash left behind has a header that says 0 (or too few) bytes: :func:`repair_wav` rewrites
the sizes from the file's length, so every sample that reached the disk can be heard and
transcribed again.

In an encrypted data folder the file is instead a sealed stream: ``VRSTR1``, the sample
rate, then one sealed part per flush (4-byte length, then the part; see
:meth:`voicereflect.sealing.FileSeal.seal_part`). No sample is ever on disk in the clear,
and :func:`read_partial` keeps every whole part a crash left.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from voicereflect.types import SAMPLE_RATE, AudioClip

if TYPE_CHECKING:
    from voicereflect.sealing import FileSeal

HEADER_BYTES = 44
PARTIAL_SUFFIX = ".partial.wav"
STREAM_MAGIC = b"VRSTR1"
_STREAM_HEADER = len(STREAM_MAGIC) + 4


def wav_header(sample_rate: int, data_bytes: int) -> bytes:
    """A canonical 44-byte header for mono 16-bit PCM with ``data_bytes`` of samples."""
    return (b"RIFF" + struct.pack("<I", 36 + data_bytes) + b"WAVE"
            + b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, sample_rate, sample_rate * 2, 2, 16)
            + b"data" + struct.pack("<I", data_bytes))


def pcm16(samples: np.ndarray) -> bytes:
    """Float samples in [-1, 1] as little-endian 16-bit PCM bytes (clipped)."""
    clipped = np.clip(np.asarray(samples, dtype=np.float32).reshape(-1), -1.0, 1.0)
    return (clipped * 32767.0).round().astype("<i2").tobytes()


def wav_bytes(pcm: bytes, sample_rate: int) -> bytes:
    """A whole mono 16-bit WAV file for ``pcm``."""
    return wav_header(sample_rate, len(pcm)) + pcm


class PartialRecording:
    """One utterance being written to disk as it is spoken.

    Args:
        path: the file to create (it must not exist); created 0600.
        sample_rate: of the samples passed to :meth:`append`.
        flush_s: how much audio may sit in memory before it is flushed and fsynced.
        seal: an encrypted folder's seal: write a sealed stream instead of a WAV.
    """

    def __init__(self, path: Path, *, sample_rate: int = SAMPLE_RATE, flush_s: float = 0.5,
                 seal: FileSeal | None = None) -> None:
        self.path = Path(path)
        self.sample_rate = sample_rate
        self._seal = seal if seal is not None and seal.encrypted else None
        self._flush_bytes = max(2, int(flush_s * sample_rate) * 2)
        self._pending = bytearray()
        self._written = 0
        self._parts = 0
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self._file = os.fdopen(fd, "wb")
        if self._seal is None:
            self._file.write(wav_header(sample_rate, 0))
        else:
            self._file.write(stream_header(sample_rate))
        self._sync()

    def append(self, samples: np.ndarray) -> None:
        """Add samples; every ``flush_s`` of audio reaches the disk (fsynced)."""
        self._pending += pcm16(samples)
        if len(self._pending) >= self._flush_bytes:
            self._write_pending()

    def finish(self) -> Path:
        """Write what is left and the real sizes in the header; close; return the path."""
        self._write_pending()
        if self._seal is None:
            self._file.seek(0)
            self._file.write(wav_header(self.sample_rate, self._written))
            self._sync()
        self._file.close()
        return self.path

    def discard(self) -> None:
        """Close and delete the file (a blip that was not speech)."""
        self._file.close()
        self.path.unlink(missing_ok=True)

    def _write_pending(self) -> None:
        if self._pending:
            if self._seal is None:
                self._file.write(self._pending)
            else:
                self._file.write(sealed_part(self._seal, self.path, bytes(self._pending), self._parts))
                self._parts += 1
            self._written += len(self._pending)
            self._pending.clear()
            self._sync()

    def _sync(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())


def repair_wav(path: Path) -> int:
    """Make a WAV a crash cut short readable: sizes from the file's length. Returns its samples.

    Only files this module wrote (a 44-byte mono 16-bit header) are touched; a trailing
    odd byte is cut off.
    """
    with open(path, "r+b") as handle:
        header = handle.read(HEADER_BYTES)
        if len(header) < HEADER_BYTES or header[:4] != b"RIFF" or header[36:40] != b"data":
            raise ValueError(f"{path} is not a recording voicereflect wrote")
        sample_rate = struct.unpack("<I", header[24:28])[0]
        size = os.fstat(handle.fileno()).st_size
        data_bytes = (size - HEADER_BYTES) // 2 * 2
        handle.truncate(HEADER_BYTES + data_bytes)
        handle.seek(0)
        handle.write(wav_header(sample_rate, data_bytes))
        handle.flush()
        os.fsync(handle.fileno())
    return data_bytes // 2


def stream_header(sample_rate: int) -> bytes:
    """The start of a sealed stream."""
    return STREAM_MAGIC + struct.pack("<I", sample_rate)


def sealed_part(seal: FileSeal, path: Path, pcm: bytes, index: int) -> bytes:
    """One part of the sealed stream at ``path``: its length, then the sealed samples."""
    part = seal.seal_part(path, pcm, index)
    return struct.pack("<I", len(part)) + part


def read_partial(path: Path, seal: FileSeal | None = None) -> AudioClip:
    """Every sample a streamed recording holds, even one a crash cut short.

    A plain WAV gets its header repaired in place (:func:`repair_wav`); a sealed stream
    is read part by part, and a last part the crash left incomplete is dropped.

    Raises:
        ValueError: the file is neither; DecryptionError: a whole part fails its check.
    """
    raw = Path(path).read_bytes()
    if not raw.startswith(STREAM_MAGIC):
        repair_wav(path)
        raw = Path(path).read_bytes()
        return AudioClip(_samples(raw[HEADER_BYTES:]), struct.unpack("<I", raw[24:28])[0])
    if seal is None or not seal.encrypted or len(raw) < _STREAM_HEADER:
        raise ValueError(f"{path} is a sealed recording and this data folder has no key unlocked")
    sample_rate = struct.unpack("<I", raw[len(STREAM_MAGIC):_STREAM_HEADER])[0]
    pcm, offset, index = bytearray(), _STREAM_HEADER, 0
    while offset + 4 <= len(raw):
        size = struct.unpack("<I", raw[offset:offset + 4])[0]
        part = raw[offset + 4:offset + 4 + size]
        if len(part) < size:
            break  # the crash came in the middle of this part
        pcm += seal.unseal_part(path, part, index)
        offset, index = offset + 4 + size, index + 1
    return AudioClip(_samples(bytes(pcm)), sample_rate)


def _samples(pcm: bytes) -> np.ndarray:
    whole = len(pcm) // 2 * 2
    return np.frombuffer(pcm[:whole], dtype="<i2").astype(np.float32) / 32767.0
