"""`voicereflect prep` and `voicereflect patterns`: look back at your own words, and prepare for the next session.

``cli.py`` registers the two commands with ``cli.add_command(prep)`` and
``cli.add_command(patterns)``. It imports only ``cli_support`` at import time, and the
rest only when a command runs, so that ``voicereflect --help`` stays instant.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta
from pathlib import Path

import click

from voicereflect.cli_support import CONTEXT, settings_of

SINCE_HELP = "Sessions from the last N days or weeks (7d, 2w), or since a date (YYYY-MM-DD, local time)."
FORMATS = ("md", "html", "pdf")


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """``7d`` / ``2w`` (counted back from ``now``) or ``YYYY-MM-DD`` (local midnight), as an aware datetime.

    Raises:
        PrepError: anything else, a zero count, or a date in the future, in one line.
    """
    from voicereflect.prep import PrepError

    now = now or datetime.now().astimezone()
    cleaned = text.strip().lower()
    match = re.fullmatch(r"(\d{1,5})\s*([dw])", cleaned)
    if match and int(match.group(1)) > 0:
        return now - timedelta(days=int(match.group(1)) * (7 if match.group(2) == "w" else 1))
    try:
        day = date.fromisoformat(cleaned) if re.fullmatch(r"\d{4}-\d{2}-\d{2}", cleaned) else None
    except ValueError:
        day = None
    if day is None:
        raise PrepError(f"--since '{text}' is not a period voicereflect understands. "
                        "Use days or weeks back (7d, 2w) or a date (YYYY-MM-DD).")
    if day > now.date():
        raise PrepError(f"--since {day.isoformat()} is in the future. Use a past date, or days back such as 7d.")
    return datetime.combine(day, time.min).astimezone()


def load_records(settings, since: datetime) -> list:
    """Every session that started at or after ``since``, read whole from the store, oldest first."""
    from voicereflect.components import open_store
    from voicereflect.patterns import records_since

    return records_since(open_store(settings), since)


def default_brief_path(fmt: str, folder: Path, now: datetime | None = None) -> Path:
    """``folder/voicereflect-prep-<YYYYMMDD-HHMMSS>.<fmt>`` (local time)."""
    return Path(folder) / f"voicereflect-prep-{(now or datetime.now()):%Y%m%d-%H%M%S}.{fmt}"


def brief_bytes(brief, fmt: str) -> bytes:
    """The brief rendered as ``fmt`` ("md", "html" or "pdf"), ready to write."""
    from voicereflect.prep import pdf_bytes, render_html, render_markdown

    if fmt == "pdf":
        return pdf_bytes(brief)
    return (render_html(brief) if fmt == "html" else render_markdown(brief)).encode("utf-8")


@click.command("prep", context_settings=CONTEXT)
@click.option("--since", default="7d", metavar="Nd|Nw|DATE", help=SINCE_HELP)
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="md",
              help="md prints to the terminal unless --out is given; html and pdf always write a file.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="File to create (0600); never overwritten.  "
                   "[default for html/pdf: voicereflect-prep-<YYYYMMDD-HHMMSS>.<format> in the current folder]")
@click.pass_context
def prep(ctx: click.Context, since: str, fmt: str, out: Path | None) -> None:
    """A one-to-two page brief of your own words for your next therapy session.

    It gathers, from the sessions in the period: a line per session, the moments you
    flagged, your rehearsed lines, what you want from the session, recurring themes and
    people, and your intensity ratings. Only your words; nothing the assistant said.
    """
    from voicereflect.prep import build_brief, write_new

    start = parse_since(since)
    brief = build_brief(load_records(settings_of(ctx), start), start)
    if fmt == "md" and out is None:
        click.echo(brief_bytes(brief, fmt).decode("utf-8"), nl=False)
        return
    path = write_new(out or default_brief_path(fmt, Path.cwd()), brief_bytes(brief, fmt))
    click.echo(str(path))


@click.command("patterns", context_settings=CONTEXT)
@click.option("--since", default="8w", metavar="Nd|Nw|DATE", help=SINCE_HELP)
@click.option("--json", "as_json", is_flag=True,
              help="Print {since, sessions, weeks, themes, emotions, people} with per-week counts.")
@click.pass_context
def patterns(ctx: click.Context, since: str, as_json: bool) -> None:
    """Themes, emotion words and people in your own words over time, counted on this machine (no model)."""
    from voicereflect.patterns import count_patterns, render_patterns

    start = parse_since(since)
    result = count_patterns(load_records(settings_of(ctx), start), start)
    if as_json:
        from voicereflect.cli import emit_json

        emit_json(result.to_dict())
        return
    click.echo(render_patterns(result), nl=False)

