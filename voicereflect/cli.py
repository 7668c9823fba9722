"""Command-line interface: the one place that builds real components and prints.

Quick start: `voicereflect talk` to reflect aloud; `voicereflect sessions list` to look back.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from dataclasses import asdict
from pathlib import Path

import click

from voicereflect import __version__
from voicereflect.config import data_home, load_settings, resolve_config_path, user_config_path
from voicereflect.debug import debug_enabled
from voicereflect.cli_support import CONTEXT, emit_json, plural, settings_of  # noqa: F401  (re-exported)
from voicereflect.errors import VoiceReflectError


@click.group(context_settings=CONTEXT, epilog="Quick start: voicereflect talk   (or: voicereflect talk --text)")
@click.version_option(__version__, prog_name="voicereflect")
@click.option("--config", "config_path", metavar="PATH", help="Config file (default: VOICEREFLECT_CONFIG, then the user config folder).")
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logs.")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, debug: bool) -> None:
    """voicereflect: reflect aloud between therapy sessions, locally and offline.

    It listens, transcribes on this machine, asks one gentle question at a time, speaks
    it, and keeps every word so you can look back before your next session. It is an AI
    reflection tool, not therapy and not a crisis service.
    """
    if debug:
        os.environ["VOICEREFLECT_DEBUG"] = "1"
    ctx.ensure_object(dict)
    if "settings" not in ctx.obj:
        ctx.obj["settings"] = load_settings(config_path)
    ctx.obj["config_path"] = config_path
    if ctx.invoked_subcommand in {"talk", "export", "doctor", "prep", "patterns", "review"}:
        _housekeeping(ctx)


def _housekeeping(ctx: click.Context) -> None:
    """Finish sessions a crash cut off and apply [storage] audio_days, before the command runs.

    Not for ``--help``: asking how a command works must not touch the journal.
    """
    from voicereflect.components import housekeeping

    if {"-h", "--help"} & set(ctx.find_root().obj.get("argv", sys.argv[1:])):
        return
    settings = settings_of(ctx)

    for line in housekeeping(settings):
        click.echo(line, err=True)


@cli.command(context_settings=CONTEXT)
@click.option("--guide", "guide_id", default=None, help="Reflection guide (see `voicereflect guides list`).  [default: open]")
@click.option("--max-turns", type=click.IntRange(min=1), default=None, help="End after this many replies.")
@click.option("--text", "text_mode", is_flag=True, help="Type instead of speaking (one line per turn when piped).")
@click.option("--no-speak", is_flag=True, help="Print replies without speaking them.")
@click.option("--device", default=None, metavar="NAME|INDEX", help="Audio device for input and output (see --list-devices).")
@click.option("--list-devices", is_flag=True, help="List audio devices and exit.")
@click.option("--naive", is_flag=True, hidden=True,
              help="Benchmarks only: 800 ms silence, whole 30 s transcription, whole reply, then speech.")
@click.pass_context
def talk(ctx: click.Context, guide_id: str | None, max_turns: int | None, text_mode: bool, no_speak: bool,
         device: str | None, list_devices: bool, naive: bool) -> None:
    """Start a reflection session: speak, hear one question back, repeat. Ctrl-C or "end session" ends it."""
    from voicereflect import talk_command

    settings = settings_of(ctx)
    if list_devices:
        talk_command.print_devices()
        return
    if device is not None:
        settings = settings.replace("audio", input_device=device, output_device=device)
    if guide_id:
        settings = settings.replace("session", guide=guide_id)
    talk_command.run_talk(settings, max_turns=max_turns, text_mode=text_mode, speak=not no_speak, naive=naive)


@cli.command(context_settings=CONTEXT)
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=True, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of {file, text, duration_s}.")
@click.pass_context
def transcribe(ctx: click.Context, files: tuple[Path, ...], as_json: bool) -> None:
    """Transcribe audio files (any format PyAV reads) locally with faster-whisper."""
    from voicereflect.components import load_transcriber
    from voicereflect.stt import load_audio_file

    settings = settings_of(ctx)
    clips = [(path, load_audio_file(path)) for path in files]  # fail on a bad file before loading the model
    transcriber = load_transcriber(settings)
    results = []
    for path, clip in clips:
        transcript = transcriber.transcribe(clip)
        results.append({"file": str(path), "text": transcript.text, "duration_s": round(clip.duration_s, 3)})
        if not as_json:
            click.echo(f"{path}: {transcript.text}")
    if as_json:
        emit_json(results)


@cli.group(context_settings=CONTEXT)
@click.pass_context
def sessions(ctx: click.Context) -> None:
    """Look back at saved sessions."""
    if ctx.invoked_subcommand not in ("recover", "prune", "repair"):  # they do it themselves, or must not
        _housekeeping(ctx)


@sessions.command("list", context_settings=CONTEXT)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of {id, started_at, guide, turns, ...}.")
@click.pass_context
def sessions_list(ctx: click.Context, as_json: bool) -> None:
    """List saved sessions, oldest first."""
    from voicereflect.components import open_store

    rows = open_store(settings_of(ctx)).list_sessions()
    if as_json:
        emit_json([row.to_dict() for row in rows])
        return
    if not rows:
        click.echo("No sessions yet. Start one with: voicereflect talk", err=True)
        return
    click.echo(f"{'ID':<22} {'STARTED (UTC)':<17} {'GUIDE':<12} {'TURNS':>5}  {'STATUS':<11} {'FLAGS':<6} FIRST WORDS")
    for row in rows:
        started = row.started_at[:16].replace("T", " ")
        marks = (f"*{row.flagged}" if row.flagged else "") + (f" r{row.rating}" if row.rating else "")
        tags = f"  [{', '.join(row.tags)}]" if row.tags else ""
        click.echo(f"{row.id:<22} {started:<17} {row.guide:<12} {row.turns:>5}  {row.status:<11} {marks:<6} "
                   f"{row.first_words[:50]}{tags}")


@sessions.command("show", context_settings=CONTEXT)
@click.argument("session_id")
@click.option("--json", "as_json", is_flag=True, help="Print the session as JSON with its turns.")
@click.pass_context
def sessions_show(ctx: click.Context, session_id: str, as_json: bool) -> None:
    """Show one session's transcript."""
    from voicereflect.components import open_store
    from voicereflect.safety.responses import event_note

    record = open_store(settings_of(ctx)).get_session(session_id)
    if as_json:
        emit_json(record.to_dict())
        return
    summary, notes = record.summary, record.notes
    click.echo(f"Session {summary.id} - guide: {summary.guide} - started {summary.started_at} - {summary.status}")
    if notes.tags or notes.rating:
        rating = f"intensity {notes.rating}/10" if notes.rating else ""
        click.echo("  ".join(part for part in (f"tags: {', '.join(notes.tags)}" if notes.tags else "", rating) if part))
    for index, turn in enumerate(record.turns):
        label = "you" if turn.role == "user" else "voicereflect"
        marks = "  [flagged]" if index in notes.flagged else ""
        marks += "".join(f"  [safety: {event_note(e)}]" for e in turn.events if e.get("type") == "safety")
        click.echo(f"#{index:<3} [{turn.started_at[11:19]}] {label}: {turn.text}{marks}")
    if notes.recap:
        click.echo(f"Summary ({'model, checked' if notes.recap_source == 'llm' else 'your words'}): {notes.recap}")


def _add_review_commands() -> None:
    from voicereflect.sessions_cli import COMMANDS

    for command in COMMANDS:
        sessions.add_command(command)


_add_review_commands()


@sessions.command("recover", context_settings=CONTEXT)
@click.pass_context
def sessions_recover(ctx: click.Context) -> None:
    """Finish sessions a crash cut off: transcribe their leftover recordings, mark them interrupted."""
    from voicereflect.components import load_transcriber, open_store
    from voicereflect.recovery import recover

    settings = settings_of(ctx)
    report = recover(open_store(settings), lambda: load_transcriber(settings))
    click.echo(report.summary())
    if report.untranscribed:
        raise SystemExit(1)


@sessions.command("repair", context_settings=CONTEXT)
@click.pass_context
def sessions_repair(ctx: click.Context) -> None:
    """Roll damaged session files back to their last-good copy and rebuild the index."""
    from voicereflect.components import open_store
    from voicereflect.repair import repair

    report = repair(open_store(settings_of(ctx)))
    for line in report.lines():
        click.echo(line)
    if report.unrecoverable:
        raise SystemExit(1)


@sessions.command("prune", context_settings=CONTEXT)
@click.pass_context
def sessions_prune(ctx: click.Context) -> None:
    """Delete recordings older than [storage] audio_days now; transcripts are kept."""
    from voicereflect.components import open_store
    from voicereflect.manage import apply_audio_retention

    settings = settings_of(ctx)
    days = settings.storage.audio_days
    if days == 0:
        click.echo("Recordings are kept forever ([storage] audio_days = 0); nothing removed. "
                   "Set audio_days in your config to expire them.")
        return
    removed = apply_audio_retention(open_store(settings), days)
    click.echo(f"Removed {plural(removed, 'recording')} older than {plural(days, 'day')}; transcripts kept.")


@cli.command("export", context_settings=CONTEXT)
@click.argument("session_ids", nargs=-1, metavar="[SESSION_ID]...")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Folder (json) or .md file (markdown) to create; never overwritten.  "
                   "[default: voicereflect-export-<YYYYMMDD-HHMMSS>[.md] in the current folder]")
@click.option("--format", "fmt", type=click.Choice(["json", "markdown"]), default="json",
              help="json: a folder with sessions.json and copies of the recordings; markdown: one readable file.")
@click.pass_context
def export_command(ctx: click.Context, session_ids: tuple[str, ...], out: Path | None, fmt: str) -> None:
    """Export every session (or the ones named) to keep, read or take elsewhere."""
    from voicereflect.components import open_store
    from voicereflect.manage import default_export_path, export_sessions, select_sessions

    store = open_store(settings_of(ctx))
    records = select_sessions(store, list(session_ids) or None)
    if not records:
        click.echo("No sessions to export yet. Start one with: voicereflect talk", err=True)
        return
    result = export_sessions(store, records, out or default_export_path(fmt, Path.cwd()), fmt)
    line = f"Exported {plural(result.sessions, 'session')} to {result.path}"
    if fmt == "json":
        line += f" ({plural(result.recordings, 'recording')} copied"
        line += f"; {result.missing} no longer on disk, skipped)" if result.missing else ")"
    click.echo(line + ".")


@cli.command("delete", context_settings=CONTEXT)
@click.argument("session_ids", nargs=-1, metavar="SESSION_ID...")
@click.option("--all", "everything", is_flag=True, help="Delete every saved session.")
@click.option("--yes", is_flag=True, help="Do not ask first (required when not at a terminal).")
@click.pass_context
def delete_command(ctx: click.Context, session_ids: tuple[str, ...], everything: bool, yes: bool) -> None:
    """Delete sessions for good: transcripts, recordings, backups and index rows. Cannot be undone."""
    from voicereflect.components import open_store
    from voicereflect.manage import delete_sessions, plan_deletion

    if bool(session_ids) == everything:
        raise click.UsageError("Name the sessions to delete, or pass --all (not both).")
    store = open_store(settings_of(ctx))
    plan = plan_deletion(store, None if everything else session_ids)  # unknown id: nothing deleted
    if not plan.session_ids:
        click.echo("No sessions to delete.", err=True)
        return
    what = f"{plural(len(plan.session_ids), 'session')} ({plural(plan.turns, 'turn')})"
    if not yes:
        if not sys.stdin.isatty():
            raise VoiceReflectError(f"Not deleting {what}: no terminal to confirm at. Pass --yes to delete them.")
        if not click.confirm(f"Delete {what} and their recordings for good?", default=False, err=True):
            click.echo("Nothing deleted.", err=True)
            return
    delete_sessions(store, plan.session_ids)
    click.echo(f"Deleted {what}.")


@cli.command(context_settings=CONTEXT)
@click.pass_context
def doctor(ctx: click.Context) -> None:
    """Check microphone, speaker, speech model, LLM, voice and data folder; say how to fix what fails."""
    from voicereflect.doctor import run_checks

    failures = run_checks(settings_of(ctx), echo=click.echo)
    if failures:
        sys.exit(1)


@cli.group("config", context_settings=CONTEXT)
def config_group() -> None:
    """Where the config is, and what it says."""


@config_group.command("path")
@click.pass_context
def config_path_cmd(ctx: click.Context) -> None:
    """Print the config file in use (or where to create one)."""
    path = resolve_config_path(ctx.find_root().obj.get("config_path"))
    click.echo(str(path) if path else f"{user_config_path()} (not created; built-in defaults in use)")


@config_group.command("show")
@click.pass_context
def config_show(ctx: click.Context) -> None:
    """Print the settings in effect as JSON, and the data folder."""
    settings = settings_of(ctx)
    data = asdict(settings)
    data["data_folder"] = str(data_home(settings))
    emit_json(data)


@cli.command("help", context_settings=CONTEXT)
@click.pass_context
def help_command(ctx: click.Context) -> None:
    """Crisis resources for your locale (set [session] locale), then your own safety plan if you wrote one.

    The numbers come first: an encrypted folder asks for its passphrase only after them.
    """
    from voicereflect.components import open_store
    from voicereflect.safety import crisis_resources
    from voicereflect.safety.plan import SafetyPlan

    settings = settings_of(ctx)
    click.echo("If you are struggling or in danger, people can help right now:")
    click.echo(crisis_resources(settings.session.locale).card())
    click.echo("voicereflect cannot contact anyone for you.")
    try:
        plan = SafetyPlan.from_dict(open_store(settings).safety_plan())
    except VoiceReflectError as exc:  # a damaged plan or a locked store never hides the numbers
        click.echo(f"(Your safety plan could not be read: {exc})", err=True)
        return
    if not plan.empty:
        click.echo("\nYour safety plan:")
        click.echo(plan.card())


@cli.group(context_settings=CONTEXT)
def guides() -> None:
    """Reflection guides."""


@guides.command("list", context_settings=CONTEXT)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of {id, title, description}.")
def guides_list(as_json: bool) -> None:
    """List the guides you can use with `talk --guide ID`."""
    from voicereflect.components import user_guides_folder
    from voicereflect.guides import load_guides

    rows = [{"id": g.id, "title": g.title, "description": g.description} for g in load_guides(user_guides_folder()).values()]
    if as_json:
        emit_json(rows)
        return
    for row in rows:
        click.echo(f"{row['id']:<14} {row['title']}: {row['description']}")


@guides.command("show", context_settings=CONTEXT)
@click.argument("guide_id")
@click.option("--json", "as_json", is_flag=True, help="Print the guide as JSON.")
def guides_show(guide_id: str, as_json: bool) -> None:
    """Show a guide's stages and scripted questions."""
    from dataclasses import asdict

    from voicereflect.components import user_guides_folder
    from voicereflect.guides import get_guide

    guide = get_guide(guide_id, user_guides_folder())
    if as_json:
        emit_json(asdict(guide))
        return
    click.echo(f"{guide.title} ({guide.id}): {guide.description}")
    click.echo(f"  opening: {guide.opening}")
    for number, stage in enumerate(guide.stages, 1):
        click.echo(f"  {number}. {stage.id} ({stage.turns} {'reply' if stage.turns == 1 else 'replies'}): {stage.intent}")
        for question in stage.questions:
            click.echo(f"       - {question}")


def _add_commands() -> None:
    """Commands that live in their own modules (each imports its heavy parts only when run)."""
    from voicereflect.prep_command import patterns, prep
    from voicereflect.review_command import review
    from voicereflect.safety_command import safety

    for command in (prep, patterns, review, safety):
        cli.add_command(command)


_add_commands()


def main(argv: list[str] | None = None, obj: dict | None = None) -> None:
    """Run the CLI: our errors become one line and exit 1 (tracebacks only with --debug)."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or debug_enabled()
    started = time.monotonic()
    try:
        cli.main(args=args, prog_name="voicereflect", obj={"argv": args, **(obj or {})}, standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Stopped.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except VoiceReflectError as exc:
        if debug:
            traceback.print_exc()
        click.echo(f"voicereflect: {exc}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        click.echo("Stopped.", err=True)
        sys.exit(130)
    finally:
        if debug:
            click.echo(f"[debug] {time.monotonic() - started:.2f} s", err=True)
