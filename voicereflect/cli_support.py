"""What every command module shares: click settings, the loaded Settings, JSON output."""

from __future__ import annotations

import click

from voicereflect.config import Settings

CONTEXT = {"help_option_names": ["-h", "--help"], "show_default": True}


def settings_of(ctx: click.Context) -> Settings:
    """The settings loaded once by the top-level command."""
    return ctx.find_root().obj["settings"]


def emit_json(data: object) -> None:
    """Print data as JSON on stdout (a lone surrogate the store kept is escaped, not a crash)."""
    from voicereflect.manage import json_text

    click.echo(json_text(data), nl=False)


def plural(count: int, noun: str) -> str:
    """``1 session``, ``2 sessions``."""
    return f"{count} {noun}{'' if count == 1 else 's'}"
