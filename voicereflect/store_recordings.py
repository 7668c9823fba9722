"""The recordings half of the file store: ``audio/<session id>/NNNN.wav`` and the streamed partials.

A recording is named after the turn it belongs to (``0003.wav``; ``0003-1.wav`` if taken).
While the person speaks it is streamed to ``NNNN.partial.wav`` (see :mod:`voicereflect.recording`)
and adopted as the turn's just before the turn is saved (a crash in between leaves a finished
recording that no turn names: recovery transcribes it). In an encrypted folder every file is
sealed; :meth:`RecordingFiles.recording_bytes` and :meth:`RecordingFiles.read_recording` give
them back as plain WAV.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from voicereflect.errors import DamagedFileError, DecryptionError, StoreError
from voicereflect.recording import PARTIAL_SUFFIX, PartialRecording, pcm16, read_partial, wav_bytes
from voicereflect.sealing import FileSeal
from voicereflect.storage import atomic_write, ensure_dir, fsync_dir, store_io_error
from voicereflect.types import AudioClip


class RecordingFiles:
    """Recording methods of :class:`voicereflect.store.TinyDBSessionStore` (a mixin).

    Needs ``home``, ``durable``, ``seal``, ``audio_path()`` and ``_next_turn_number()``.
    """

    home: Path
    durable: bool
    seal: FileSeal

    def audio_path(self, relative: str) -> Path:  # pragma: no cover - defined by the store
        raise NotImplementedError

    def _next_turn_number(self, session_id: str) -> int:  # pragma: no cover - defined by the store
        raise NotImplementedError

    def save_audio(self, session_id: str, clip: AudioClip) -> str:
        """Write a 16-bit PCM WAV durably; return its path relative to ``home``.

        The file is named after the index the next turn will get (``0003.wav``), with a
        suffix if that name is taken (``0003-1.wav``).
        """
        number = self._next_turn_number(session_id)
        return self._write_recording(session_id, number, wav_bytes(pcm16(clip.samples), clip.sample_rate))

    def _write_recording(self, session_id: str, number: int, wav: bytes) -> str:
        """Write a whole recording (sealed) as turn ``number``'s; return its relative path."""
        folder = self.home / "audio" / session_id
        try:
            ensure_dir(folder, durable=self.durable)
            for name in _recording_names(number, ".wav"):
                payload = self.seal.seal(folder / name, wav)
                try:
                    atomic_write(folder / name, lambda f: f.write(payload), replace=False, durable=self.durable)
                    return f"audio/{session_id}/{name}"
                except FileExistsError:
                    continue
        except OSError as exc:
            raise store_io_error("write", folder, exc) from exc
        raise _too_many(number, folder)

    def open_recording(self, session_id: str) -> PartialRecording:
        """Start streaming a recording to ``audio/<id>/<NNNN>.partial.wav`` (NNNN: the next turn)."""
        number = self._next_turn_number(session_id)
        folder = self.home / "audio" / session_id
        try:
            ensure_dir(folder, durable=self.durable)
            for name in _recording_names(number, PARTIAL_SUFFIX):
                try:
                    recording = PartialRecording(folder / name, seal=self.seal)
                except FileExistsError:
                    continue
                if self.durable:
                    fsync_dir(folder)
                return recording
        except OSError as exc:
            raise store_io_error("write", folder, exc) from exc
        raise _too_many(number, folder)

    def adopt_recording(self, session_id: str, path: Path) -> str:
        """Make a finished streamed recording the next turn's ``NNNN.wav``; return its relative path.

        A plain recording is renamed; a sealed stream is sealed again whole under its new
        name, then the stream is deleted.
        """
        number = self._next_turn_number(session_id)
        folder = self.home / "audio" / session_id
        if self.seal.encrypted:
            try:
                clip = self.read_partial(path)
            except (ValueError, OSError) as exc:
                raise StoreError(f"Could not read the recording {path}: {exc}. It is kept as it is.") from exc
            relative = self._write_recording(session_id, number, wav_bytes(pcm16(clip.samples), clip.sample_rate))
            try:
                path.unlink(missing_ok=True)
            except OSError as exc:
                raise store_io_error("delete", path, exc) from exc
            return relative
        try:
            for name in _recording_names(number, ".wav"):
                target = folder / name
                if target.exists():
                    continue
                os.rename(path, target)
                if self.durable:
                    fsync_dir(folder)
                return f"audio/{session_id}/{name}"
        except OSError as exc:
            raise store_io_error("move", path, exc) from exc
        raise _too_many(number, folder)

    def recordings(self, session_id: str) -> list[Path]:
        """A session's finished recordings on disk (turns' or not), by name; streamed partial ones excluded."""
        folder = self.home / "audio" / session_id
        return sorted(p for p in folder.glob("*.wav") if not p.name.endswith(PARTIAL_SUFFIX))

    def partial_recordings(self, session_id: str) -> list[Path]:
        """Streamed recordings of a session that never became a turn's (a crash), oldest first."""
        return sorted((self.home / "audio" / session_id).glob(f"*{PARTIAL_SUFFIX}"))

    def read_partial(self, path: Path) -> AudioClip:
        """Every sample a streamed recording holds, even if a crash cut it short (ValueError if unreadable)."""
        try:
            return read_partial(path, self.seal)
        except DecryptionError as exc:
            raise ValueError(str(exc)) from exc

    def recording_bytes(self, relative: str) -> bytes | None:
        """A finished recording as a plain WAV file's bytes (decrypted); None if it is gone.

        Raises:
            StoreError: the path is not a recording of this store, or cannot be read;
                DamagedFileError: an encrypted recording fails its integrity check.
        """
        path = self.audio_path(relative)
        try:
            blob = path.read_bytes()
        except (FileNotFoundError, IsADirectoryError):
            return None
        except OSError as exc:
            raise store_io_error("read", path, exc) from exc
        try:
            return self.seal.unseal(path, blob)
        except DecryptionError as exc:
            raise DamagedFileError(f"{path} is damaged: {exc}") from exc

    def read_recording(self, relative: str) -> AudioClip | None:
        """A finished recording's samples; None if it is gone."""
        import io

        import soundfile

        wav = self.recording_bytes(relative)
        if wav is None:
            return None
        samples, rate = soundfile.read(io.BytesIO(wav), dtype="float32")
        return AudioClip(samples, rate)


def _recording_names(number: int, suffix: str) -> Iterator[str]:
    """``0003<suffix>``, then ``0003-1<suffix>``, ``0003-2<suffix>``... for a turn's recording."""
    yield f"{number:04d}{suffix}"
    for attempt in range(1, 1000):
        yield f"{number:04d}-{attempt}{suffix}"


def _too_many(number: int, folder: Path) -> StoreError:
    return StoreError(f"Too many recordings named {number:04d}* in {folder}; move some aside.")
