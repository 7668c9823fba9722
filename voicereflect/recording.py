"""Recordings written while the person speaks, so a crash loses at most about a second.

A :class:`PartialRecording` is a 16-bit PCM WAV file opened when speech starts. Its header
is written first with sizes of 0; samples are appended as they arrive and flushed to the
disk every ``flush_s``; :meth:`PartialRecording.finish` writes the real sizes. A file a
crash left behind has a header that says 0 (or too few) bytes: :func:`repair_wav` rewrites
the sizes from the file's length, so every sample that reached the disk can be heard and
transcribed again.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np

from voicereflect.types import SAMPLE_RATE

HEADER_BYTES = 44
PARTIAL_SUFFIX = ".partial.wav"


def wav_header(sample_rate: int, data_bytes: int) -> bytes:
    """A canonical 44-byte header for mono 16-bit PCM with ``data_bytes`` of samples."""
    return (b"RIFF" + struct.pack("<I", 36 + data_bytes) + b"WAVE"
            + b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, sample_rate, sample_rate * 2, 2, 16)
            + b"data" + struct.pack("<I", data_bytes))


def pcm16(samples: np.ndarray) -> bytes:
    """Float samples in [-1, 1] as little-endian 16-bit PCM bytes (clipped)."""
    clipped = np.clip(np.asarray(samples, dtype=np.float32).reshape(-1), -1.0, 1.0)
    return (clipped * 32767.0).round().astype("<i2").tobytes()


class PartialRecording:
    """One utterance being written to disk as it is spoken.

    Args:
        path: the file to create (it must not exist); created 0600.
        sample_rate: of the samples passed to :meth:`append`.
        flush_s: how much audio may sit in memory before it is flushed and fsynced.
    """

    def __init__(self, path: Path, *, sample_rate: int = SAMPLE_RATE, flush_s: float = 0.5) -> None:
        self.path = Path(path)
        self.sample_rate = sample_rate
        self._flush_bytes = max(2, int(flush_s * sample_rate) * 2)
        self._pending = bytearray()
        self._written = 0
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self._file = os.fdopen(fd, "wb")
        self._file.write(wav_header(sample_rate, 0))
        self._sync()

    def append(self, samples: np.ndarray) -> None:
        """Add samples; every ``flush_s`` of audio reaches the disk (fsynced)."""
        self._pending += pcm16(samples)
        if len(self._pending) >= self._flush_bytes:
            self._write_pending()

    def finish(self) -> Path:
        """Write what is left and the real sizes in the header; close; return the path."""
        self._write_pending()
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
            self._file.write(self._pending)
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
