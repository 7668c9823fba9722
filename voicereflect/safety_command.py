"""`voicereflect safety`: see why a line would be answered as it would, in batches too; the safety plan.

``cli.py`` registers the group with ``cli.add_command(safety)``. Only ``cli_support`` is
imported here at import time, so ``voicereflect --help`` stays instant.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from voicereflect.cli_support import CONTEXT, emit_json, settings_of
from voicereflect.errors import VoiceReflectError

if TYPE_CHECKING:
    from voicereflect.safety.checker import RiskChecker


@click.group(context_settings=CONTEXT)
def safety() -> None:
    """The risk check, your safety plan and crisis resources."""


@safety.command("check", context_settings=CONTEXT)
@click.argument("text", required=False)
@click.option("--file", "file", type=click.Path(dir_okay=False, path_type=Path),
              help="Check every non-empty line of FILE ('-' for standard input) instead of TEXT.")
@click.option("--session", "as_session", is_flag=True,
              help="With --file: the lines are consecutive turns of one session (the last turns stay in view).")
@click.option("--json", "as_json", is_flag=True,
              help="Print {level, risk, reasons, ...}; with --file one JSON object per line (JSON Lines).")
@click.pass_context
def safety_check(ctx: click.Context, text: str | None, file: Path | None, as_session: bool, as_json: bool) -> None:
    """Show the level TEXT would get (none, check_in, concern, crisis), and why."""
    from voicereflect.safety import RiskChecker
    from voicereflect.safety.responses import check_in_message, concern_message, crisis_message

    if (text is None) == (file is None):
        raise VoiceReflectError("Give either TEXT or --file FILE, e.g. voicereflect safety check --file lines.txt --json")
    if as_session and file is None:
        raise VoiceReflectError("--session needs --file: the lines of FILE are the session's turns, in order.")
    checker = RiskChecker(locale=settings_of(ctx).session.locale)
    if file is not None:
        _check_lines(checker, _read_lines(file), as_session=as_session, as_json=as_json)
        return
    result = checker.check(text)
    if as_json:
        emit_json(result.to_dict())
        return
    click.echo(f"level: {result.level}" + (f" ({'; '.join(result.reasons)})" if result.reasons else ""))
    if result.level == "crisis":
        click.echo(crisis_message(result))
    elif result.level == "concern":
        click.echo(concern_message(result))
    elif result.level == "check_in":
        click.echo(check_in_message())


def _read_lines(file: Path) -> list[str]:
    """The non-empty lines of ``file`` (or standard input); one clear error when there are none."""
    try:
        raw = sys.stdin.buffer.read() if str(file) == "-" else file.read_bytes()
        content = raw.decode("utf-8")
    except OSError as exc:
        raise VoiceReflectError(f"Cannot read {file}: {exc.strerror or exc}. Check the path and try again.") from exc
    except UnicodeDecodeError as exc:
        raise VoiceReflectError(f"{file} is not UTF-8 text: save it as UTF-8, one line per turn.") from exc
    lines = [line.strip() for line in content.splitlines() if line.strip()]
    if not lines:
        raise VoiceReflectError(f"{file} has no lines to check: write one turn per line.")
    return lines


def _check_lines(checker: RiskChecker, lines: list[str], *, as_session: bool, as_json: bool) -> None:
    """One result per line: each alone, or (``as_session``) as consecutive turns of one session."""
    from voicereflect.safety.context import SessionRisk

    check = SessionRisk(checker).check if as_session else checker.check
    for number, line in enumerate(lines, 1):
        result = check(line)
        if as_json:
            data = result.to_dict()
            data.pop("resources")  # the same table on every line; `voicereflect help` shows it
            click.echo(json.dumps({"line": number, **data}))
        else:
            click.echo(f"{number}\t{result.level}\t{line}")


@safety.group("plan", context_settings=CONTEXT, invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
@click.pass_context
def plan(ctx: click.Context, as_json: bool) -> None:
    """Your own safety plan: shown first whenever the check hears concern or crisis.

    Without a subcommand, shows it. `voicereflect safety plan edit` writes it, section by section.
    """
    if ctx.invoked_subcommand is not None:
        return
    from voicereflect.components import open_store
    from voicereflect.safety.plan import SafetyPlan
    from voicereflect.safety.resources import crisis_resources

    settings = settings_of(ctx)
    saved = SafetyPlan.from_dict(open_store(settings).safety_plan())
    if as_json:
        emit_json(saved.to_dict())
    elif saved.empty:
        click.echo("You have no safety plan yet. Write one with: voicereflect safety plan edit")
    else:
        click.echo(f"Your safety plan (last changed {saved.updated_at[:16].replace('T', ' ')}):")
        click.echo(saved.card(crisis_resources(settings.session.locale)))


@plan.command("edit", context_settings=CONTEXT)
@click.option("--section", "only", help="Edit one section only (its id, as in `safety plan --json`).")
@click.pass_context
def plan_edit(ctx: click.Context, only: str | None) -> None:
    """Write or change your safety plan, one section at a time.

    For each section, type one entry per line and an empty line to finish; an empty line at
    once keeps what is there, and a single "-" clears the section. Saved after every section.
    """
    from voicereflect.components import open_store
    from voicereflect.safety.plan import SafetyPlan, plan_sections
    from voicereflect.types import now_iso

    store = open_store(settings_of(ctx))
    current = SafetyPlan.from_dict(store.safety_plan())
    sections = [s for s in plan_sections() if only in (None, s.id)]
    if not sections:
        ids = ", ".join(s.id for s in plan_sections())
        raise VoiceReflectError(f"There is no section '{only}'. Sections: {ids}")
    interactive = sys.stdin.isatty()
    for section in sections:
        click.echo(f"\n{section.title}\n  {section.prompt}", err=True)
        for entry in current.entries.get(section.id, ()):
            click.echo(f"    now: {entry}", err=True)
        entries = _read_entries(interactive)
        if entries is None:
            continue
        current = current.with_section(section.id, [] if entries == ["-"] else entries, now_iso())
        store.save_safety_plan(current.to_dict())
    click.echo("Your safety plan is saved. See it with: voicereflect safety plan", err=True)


def _read_entries(interactive: bool) -> list[str] | None:
    """Lines up to an empty one; None when the first is empty (keep the section) or input has ended."""
    entries = []
    while True:
        if interactive:
            line = click.prompt("  ", default="", show_default=False, prompt_suffix="", err=True)
        else:
            raw = sys.stdin.readline()
            if not raw:
                return entries or None
            line = raw.strip()
        if not line.strip():
            return entries or None
        entries.append(line.strip())
