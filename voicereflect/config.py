"""Settings: frozen dataclasses read once from config.toml and validated.

Precedence: ``--config PATH``, then ``VOICEREFLECT_CONFIG``, then ``config.toml`` in the
user config folder, then the defaults below (the repository's ``config.toml`` documents
every key). Secrets come from the environment, never from the file.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from voicereflect.errors import ConfigError

APP_NAME = "voicereflect"


@dataclass(frozen=True)
class AudioSettings:
    """Microphone and speaker."""

    input_device: str = ""
    output_device: str = ""


@dataclass(frozen=True)
class EndpointSettings:
    """When a turn has ended: Silero VAD probabilities through a silence window."""

    vad_threshold: float = 0.5
    silence_ms: int = 200
    second_look_ms: int = 1000
    max_silence_ms: int = 3000
    min_speech_ms: int = 250
    preroll_ms: int = 300
    max_turn_s: float = 120.0


@dataclass(frozen=True)
class SttSettings:
    """Speech-to-text with faster-whisper."""

    model: str = "tiny.en"
    device: str = "cpu"
    compute_type: str = "int8"
    language: str = "en"
    beam_size: int = 5
    threads: int = 2


@dataclass(frozen=True)
class LlmSettings:
    """The language model, always through the openai client."""

    base_url: str = "embedded"
    model: str = ""
    model_path: str = ""
    api_key_env: str = "OPENAI_API_KEY"
    temperature: float = 0.4
    max_tokens: int = 120
    timeout_s: float = 20.0
    first_token_timeout_s: float = 5.0
    first_sentence_s: float = 0.3
    question_s: float = 2.5
    threads: int = 2
    context_tokens: int = 2048


@dataclass(frozen=True)
class TtsSettings:
    """Text-to-speech."""

    engine: str = "auto"
    voice: str = ""
    rate: float = 1.0


@dataclass(frozen=True)
class SessionSettings:
    """The reflection session."""

    guide: str = "open"
    locale: str = "US"
    greeting: bool = True
    continuity: bool = False
    ask_rating: bool = True  # when the person ends a session, ask once for a 1-10 intensity
    recap: bool = True  # save a short summary with each session


@dataclass(frozen=True)
class StorageSettings:
    """Where sessions are kept."""

    home: str = ""
    keep_audio: bool = True
    audio_days: int = 0  # delete recordings older than this many days, keep the text; 0 = never
    encrypt: bool = False  # encrypt everything at rest with a passphrase (stays on once a key exists)


@dataclass(frozen=True)
class PrivacySettings:
    """What may leave the machine."""

    local_only: bool = True
    redact: tuple[str, ...] = ()  # words replaced by [redacted] before text goes to a remote LLM


@dataclass(frozen=True)
class Settings:
    """All settings, one frozen section per table of config.toml."""

    audio: AudioSettings = field(default_factory=AudioSettings)
    endpointing: EndpointSettings = field(default_factory=EndpointSettings)
    stt: SttSettings = field(default_factory=SttSettings)
    llm: LlmSettings = field(default_factory=LlmSettings)
    tts: TtsSettings = field(default_factory=TtsSettings)
    session: SessionSettings = field(default_factory=SessionSettings)
    storage: StorageSettings = field(default_factory=StorageSettings)
    privacy: PrivacySettings = field(default_factory=PrivacySettings)
    source: str = "defaults"

    def replace(self, section: str, **changes: Any) -> "Settings":
        """A copy with some keys of one section changed (for command-line options)."""
        updated = dataclasses.replace(getattr(self, section), **changes)
        return dataclasses.replace(self, **{section: updated})


def user_config_path() -> Path:
    """The config file in the platform's user config folder (it may not exist)."""
    from platformdirs import user_config_dir

    return Path(user_config_dir(APP_NAME)) / "config.toml"


def data_home(settings: Settings) -> Path:
    """The data folder: ``VOICEREFLECT_HOME``, else ``[storage] home``, else the platform's."""
    env = os.environ.get("VOICEREFLECT_HOME")
    if env:
        return Path(env).expanduser()
    if settings.storage.home:
        return Path(settings.storage.home).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir(APP_NAME))


def resolve_config_path(explicit: str | None) -> Path | None:
    """Which config file applies, or None for built-in defaults."""
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise ConfigError(f"Config file {path} does not exist. Check the --config path.")
        return path
    env = os.environ.get("VOICEREFLECT_CONFIG")
    if env:
        path = Path(env).expanduser()
        if not path.is_file():
            raise ConfigError(f"VOICEREFLECT_CONFIG points to {path}, which does not exist.")
        return path
    path = user_config_path()
    return path if path.is_file() else None


def load_settings(explicit: str | None = None) -> Settings:
    """Read and validate the config file that applies (see module docstring)."""
    path = resolve_config_path(explicit)
    if path is None:
        return Settings()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc}). Fix that line or remove the file.") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot be read ({exc}).") from exc
    return parse_settings(data, str(path))


def parse_settings(data: dict[str, Any], source: str = "<config>") -> Settings:
    """Build Settings from parsed TOML, naming file, section and key on any error."""
    sections: dict[str, Any] = {}
    known = {f.name: f for f in dataclasses.fields(Settings) if f.name != "source"}
    for name, table in data.items():
        if name not in known:
            raise ConfigError(f"{source}: unknown section [{name}]. Known: {', '.join(known)}.")
        if not isinstance(table, dict):
            raise ConfigError(f"{source}: [{name}] must be a table.")
        section_cls = known[name].default_factory  # type: ignore[misc]
        sections[name] = _parse_section(section_cls, table, f"{source}: [{name}]")
        for key, value in table.items():
            _check_range(name, key, value, f"{source}: [{name}]")
    return Settings(**sections, source=source)


# Inclusive bounds for numeric keys: a value outside them is a ConfigError naming the key.
RANGES: dict[tuple[str, str], tuple[float, float]] = {
    ("endpointing", "vad_threshold"): (0.05, 0.95),
    ("endpointing", "silence_ms"): (100, 10_000),
    ("endpointing", "second_look_ms"): (100, 30_000),
    ("endpointing", "max_silence_ms"): (100, 30_000),
    ("endpointing", "min_speech_ms"): (0, 5_000),
    ("endpointing", "preroll_ms"): (0, 2_000),
    ("endpointing", "max_turn_s"): (5, 3_600),
    ("stt", "beam_size"): (1, 20),
    ("stt", "threads"): (1, 256),
    ("llm", "temperature"): (0, 2),
    ("llm", "max_tokens"): (16, 4_096),
    ("llm", "timeout_s"): (1, 600),
    ("llm", "first_token_timeout_s"): (0.5, 120),
    ("llm", "first_sentence_s"): (0.05, 120),
    ("llm", "question_s"): (0.05, 120),
    ("llm", "threads"): (1, 256),
    ("llm", "context_tokens"): (512, 131_072),
    ("tts", "rate"): (0.5, 2.0),
    ("storage", "audio_days"): (0, 36_500),
}


def _check_range(section: str, key: str, value: Any, where: str) -> None:
    bounds = RANGES.get((section, key))
    if bounds and not bounds[0] <= value <= bounds[1]:
        raise ConfigError(f"{where} key '{key}' must be between {bounds[0]} and {bounds[1]}, not {value!r}.")


def _parse_section(cls: Any, table: dict[str, Any], where: str) -> Any:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key not in fields:
            raise ConfigError(f"{where} unknown key '{key}'. Known: {', '.join(fields)}.")
        expected = type(getattr(cls(), key))
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if expected is str and isinstance(value, int) and not isinstance(value, bool) and key.endswith("device"):
            value = str(value)
        if expected is tuple and isinstance(value, list):
            if not all(isinstance(item, str) for item in value):
                raise ConfigError(f"{where} key '{key}' must be a list of strings, not {value!r}.")
            value = tuple(value)
        if not isinstance(value, expected) or (expected is not bool and isinstance(value, bool)):
            raise ConfigError(
                f"{where} key '{key}' must be {expected.__name__}, not {type(value).__name__} ({value!r})."
            )
        values[key] = value
    return cls(**values)
