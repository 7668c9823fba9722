"""``voicereflect sessions search | play | flag | unflag | tag``: looking back and marking what matters."""

from __future__ import annotations

from dataclasses import replace

import click

from voicereflect.cli_support import CONTEXT, emit_json, plural, settings_of
from voicereflect.errors import VoiceReflectError
from voicereflect.types import MAX_TAG_CHARS, SessionNotes, SessionRecord, clean_tag, merge_tags



class NoteError(VoiceReflectError):
    """A flag or tag command named a turn or tag that cannot be used."""


@click.command("search", context_settings=CONTEXT)
@click.argument("query")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of {session_id, started_at, turn, role, text}.")
@click.pass_context
def sessions_search(ctx: click.Context, query: str, as_json: bool) -> None:
    """Find words across all sessions, with the lines they are in."""
    from voicereflect.components import open_store
    from voicereflect.search import search_sessions

    store = open_store(settings_of(ctx))
    records = (store.get_session(row.id) for row in store.list_sessions())
    matches = search_sessions(records, query)
    if as_json:
        emit_json([m.to_dict() for m in matches])
        return
    if not matches:
        click.echo(f"No turn contains '{query}'.", err=True)
        return
    for match in matches:
        who = "you" if match.role == "user" else "voicereflect"
        click.echo(f"{match.session_id} #{match.turn} [{match.started_at[:16].replace('T', ' ')}] {who}: {match.text}")
    click.echo(f"{plural(len(matches), 'turn')} found.", err=True)


@click.command("play", context_settings=CONTEXT)
@click.argument("session_id")
@click.argument("turn", type=int, required=False)
@click.pass_context
def sessions_play(ctx: click.Context, session_id: str, turn: int | None) -> None:
    """Play your own recordings of a session (all, or one TURN) through the speaker."""
    from voicereflect.audio import SounddevicePlayer
    from voicereflect.components import open_store

    settings = settings_of(ctx)
    store = open_store(settings)
    record = store.get_session(session_id)
    turns = [_turn(record, turn)] if turn is not None else list(range(len(record.turns)))
    recorded = [i for i in turns if record.turns[i].role == "user" and record.turns[i].audio]
    if not recorded:
        where = f"turn {turn}" if turn is not None else "this session"
        raise NoteError(f"There is no recording of {where} (typed, or [storage] keep_audio was off, or it expired).")
    with SounddevicePlayer(device=settings.audio.output_device) as player:
        for index in recorded:
            clip = store.read_recording(record.turns[index].audio)
            if clip is None:
                click.echo(f"#{index}: the recording is gone (deleted or expired).", err=True)
                continue
            click.echo(f"#{index} ({clip.duration_s:.1f} s): {record.turns[index].text}")
            player.play(clip)


@click.command("flag", context_settings=CONTEXT)
@click.argument("session_id")
@click.argument("turn", type=int)
@click.pass_context
def sessions_flag(ctx: click.Context, session_id: str, turn: int) -> None:
    """Flag one of your turns to bring to therapy (it goes in the prep brief)."""
    _set_flag(ctx, session_id, turn, True)


@click.command("unflag", context_settings=CONTEXT)
@click.argument("session_id")
@click.argument("turn", type=int)
@click.pass_context
def sessions_unflag(ctx: click.Context, session_id: str, turn: int) -> None:
    """Remove the flag from a turn."""
    _set_flag(ctx, session_id, turn, False)


@click.command("tag", context_settings=CONTEXT)
@click.argument("session_id")
@click.argument("tags", nargs=-1)
@click.option("--remove", is_flag=True, help="Remove these tags instead of adding them.")
@click.pass_context
def sessions_tag(ctx: click.Context, session_id: str, tags: tuple[str, ...], remove: bool) -> None:
    """Add (or --remove) your own labels on a session, e.g. work, mum; with no TAGS, show them."""
    from voicereflect.components import open_store

    store = open_store(settings_of(ctx))
    record = store.get_session(session_id)
    cleaned = [_tag(t) for t in tags]
    current = record.notes.tags
    if cleaned:
        def change(notes: SessionNotes) -> SessionNotes:
            if remove:
                named = {t.casefold() for t in cleaned}
                return replace(notes, tags=tuple(t for t in notes.tags if t.casefold() not in named))
            return replace(notes, tags=merge_tags(notes.tags, cleaned))  # as on the review page

        current = store.update_notes(session_id, change).tags
    click.echo(f"Tags of {session_id}: {', '.join(current) if current else '(none)'}")


def _tag(tag: str) -> str:
    """A tag given on the command line, as stored (see types.clean_tag); NoteError if unusable."""
    cleaned = clean_tag(tag.strip(", "))
    if cleaned is None:
        raise NoteError(f"A tag is 1 to {MAX_TAG_CHARS} characters, not '{tag}'.")
    return cleaned


def _turn(record: SessionRecord, turn: int) -> int:
    if not 0 <= turn < len(record.turns):
        raise NoteError(f"Session {record.summary.id} has turns 0 to {len(record.turns) - 1}, not {turn}. "
                        f"See them with: voicereflect sessions show {record.summary.id}")
    return turn


def _set_flag(ctx: click.Context, session_id: str, turn: int, flagged: bool) -> None:
    from voicereflect.components import open_store

    store = open_store(settings_of(ctx))
    record = store.get_session(session_id)
    if record.turns[_turn(record, turn)].role != "user":
        raise NoteError(f"Turn {turn} is the assistant's; only your own words can be flagged.")
    def change(notes: SessionNotes) -> SessionNotes:
        marks = set(notes.flagged) | {turn} if flagged else set(notes.flagged) - {turn}
        return replace(notes, flagged=tuple(sorted(marks)))

    store.update_notes(session_id, change)
    state = "flagged" if flagged else "no longer flagged"
    click.echo(f"Turn {turn} of {session_id} is {state}: {record.turns[turn].text}")


COMMANDS = [sessions_search, sessions_play, sessions_flag, sessions_unflag, sessions_tag]
"""Added to the ``sessions`` group by cli.py."""
