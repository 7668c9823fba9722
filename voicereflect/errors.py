"""Errors that voicereflect raises: each says what happened and what to do next."""


class VoiceReflectError(Exception):
    """Base class: the CLI prints the message in one line and exits 1."""


class ConfigError(VoiceReflectError):
    """config.toml is unreadable, or a key is unknown or has the wrong type."""


class AudioDeviceError(VoiceReflectError):
    """No usable microphone or speaker, or a device failed mid-stream."""


class AudioFileError(VoiceReflectError):
    """An audio file is missing, empty, or not decodable."""


class TranscriptionError(VoiceReflectError):
    """The speech-to-text model could not be loaded or failed."""


class LLMError(VoiceReflectError):
    """The language model is unreachable, too slow, or answered nonsense."""


class SpeechError(VoiceReflectError):
    """Text-to-speech synthesis or playback failed."""


class StoreError(VoiceReflectError):
    """Session storage could not be read or written."""


class SessionNotFound(StoreError):
    """No session has the given id."""


class DamagedFileError(StoreError):
    """A store file is 0 bytes, truncated, not JSON or has no schema: never read as empty."""


class EncryptionError(VoiceReflectError):
    """The journal's encryption key is unusable, or an encrypted file could not be read."""


class KeyFileError(EncryptionError):
    """key.json is missing, damaged, from a newer version, or would be overwritten."""


class WrongPassphrase(EncryptionError):
    """The passphrase does not unlock key.json."""


class PassphraseUnavailable(EncryptionError):
    """No passphrase in the environment and no terminal to type one at."""


class DecryptionError(EncryptionError):
    """An encrypted file was changed, damaged, moved from another path, or uses another key."""
