"""The `voicereflect review` command: read, search and flag sessions in a local web page."""

from __future__ import annotations

import click

from voicereflect.cli_support import CONTEXT, settings_of


@click.command("review", context_settings=CONTEXT)
@click.option("--no-browser", is_flag=True, help="Only print the address; do not open a browser.")
@click.option("--port", type=click.IntRange(0, 65535), default=0,
              help="Port on 127.0.0.1 (0: a free one, picked at random).")
@click.pass_context
def review(ctx: click.Context, no_browser: bool, port: int) -> None:
    """Open your sessions in the browser: read them, search, flag turns, listen, and see the prep brief.

    The page is served on 127.0.0.1 only, behind a secret address printed here, until Ctrl-C.
    Nothing leaves this computer.
    """
    from voicereflect.components import open_store
    from voicereflect.review import serve

    store = open_store(settings_of(ctx))

    def announce(url: str) -> None:
        click.echo(url)
        click.echo("Serving your sessions on this computer only. Keep this address private; Ctrl-C stops.",
                   err=True)

    serve(store, open_browser=not no_browser, port=port, announce=announce)
