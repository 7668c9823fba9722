"""Settings: the documented config.toml matches the code's defaults; bad files are named precisely."""

from __future__ import annotations

import tomllib

import pytest

from tests.cli_helpers import REPO
from voicereflect.config import Settings, load_settings, parse_settings
from voicereflect.errors import ConfigError


def test_repo_config_toml_documents_every_key_with_its_default():
    data = tomllib.loads((REPO / "config.toml").read_text())
    parsed = parse_settings(data, "config.toml")
    assert parsed == Settings(source="config.toml")
    defaults = Settings()
    for section in data:
        assert set(data[section]) == set(vars(getattr(defaults, section))), section


def test_every_key_in_config_toml_has_a_comment():
    lines = (REPO / "config.toml").read_text().splitlines()
    for number, line in enumerate(lines):
        if "=" in line and not line.startswith("#"):
            assert lines[number - 1].startswith("#"), f"config.toml line {number + 1} has no comment: {line}"


def test_unknown_key_and_section_are_named():
    with pytest.raises(ConfigError, match=r"\[llm\] unknown key 'base_ur'"):
        parse_settings({"llm": {"base_ur": "x"}}, "c.toml")
    with pytest.raises(ConfigError, match=r"unknown section \[lm\]"):
        parse_settings({"lm": {}}, "c.toml")


def test_int_is_accepted_for_float_but_bool_is_not_int():
    assert parse_settings({"llm": {"temperature": 1}}).llm.temperature == 1.0
    with pytest.raises(ConfigError, match="beam_size"):
        parse_settings({"stt": {"beam_size": True}})


@pytest.mark.parametrize("section,key,value", [
    ("endpointing", "vad_threshold", 1.5), ("stt", "beam_size", 0), ("llm", "timeout_s", -1.0), ("tts", "rate", 9.0),
])
def test_out_of_range_values_are_named(section, key, value):
    with pytest.raises(ConfigError, match=rf"\[{section}\] key '{key}' must be between"):
        parse_settings({section: {key: value}}, "c.toml")


def test_env_config_path_must_exist(tmp_path, monkeypatch):
    monkeypatch.setenv("VOICEREFLECT_CONFIG", str(tmp_path / "nope.toml"))
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings()


def test_user_config_is_used_when_present(tmp_path, monkeypatch):
    monkeypatch.delenv("VOICEREFLECT_CONFIG", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    (tmp_path / "voicereflect").mkdir()
    (tmp_path / "voicereflect" / "config.toml").write_text('[session]\nlocale = "GB"\n')
    assert load_settings().session.locale == "GB"
