"""A full disk: the write that does not fit fails with one clear line, and nothing saved is lost.

The data folder is a 2 MB tmpfs mounted in a private mount namespace (``unshare -m``), so
the disk really fills up: the kernel returns ENOSPC exactly as it would on a full drive.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap

import pytest

from tests.cli_helpers import REPO, cli_env

FILL_AND_CHECK = textwrap.dedent("""
    import json, os, sys
    from pathlib import Path
    from voicereflect.errors import StoreError
    from voicereflect.store import TinyDBSessionStore
    from voicereflect.types import Turn

    home = Path(sys.argv[1])
    store = TinyDBSessionStore(home)
    session_id = store.start_session("open")
    for n in range(3):
        store.add_turn(session_id, Turn(role="user", text=f"turn {n} " + "words " * 200))
    filler = home / "filler"
    with open(filler, "wb", buffering=0) as f:  # take every free byte
        try:
            while True:
                f.write(b"\\0" * 65536)
        except OSError:
            pass
        try:
            while True:
                f.write(b"\\0")
        except OSError:
            pass
    errors = []
    for attempt in range(2):
        try:
            store.add_turn(session_id, Turn(role="user", text="this one does not fit " * 50))
        except StoreError as exc:
            errors.append(str(exc))
    leftovers = [p.name for p in home.rglob(".*tmp")]
    kept = [t.text.split()[1] for t in store.get_session(session_id).turns]
    filler.unlink()
    store.add_turn(session_id, Turn(role="user", text="after freeing space"))
    print(json.dumps({"errors": errors, "leftovers": leftovers, "kept": kept,
                      "after": len(store.get_session(session_id).turns),
                      "listed": [s.turns for s in store.list_sessions()]}))
""")


def _mount_prefix() -> list[str]:
    if shutil.which("unshare") is None:
        pytest.skip("`unshare` (util-linux) is not installed")
    for flags in (["-m"], ["-rm"]):
        probe = subprocess.run(["unshare", *flags, "sh", "-c", "mount -t tmpfs -o size=1m tmpfs /mnt"],
                               capture_output=True, text=True, timeout=30)
        if probe.returncode == 0:
            return ["unshare", *flags]
    pytest.skip(f"cannot mount a tmpfs in a private namespace: {probe.stderr.strip()}")


def _in_small_disk(home, script: str, *args: str) -> subprocess.CompletedProcess[str]:
    home.mkdir(parents=True)
    shell = f'mount -t tmpfs -o size=2m,mode=0700 tmpfs "{home}" && {script}'
    return subprocess.run([*_mount_prefix(), "sh", "-c", shell, "sh", *args], capture_output=True, text=True,
                          timeout=300, cwd=REPO, env=cli_env(home))


def test_a_turn_that_does_not_fit_fails_clearly_and_loses_nothing(tmp_path):
    home = tmp_path / "home"
    result = _in_small_disk(home, f'"{sys.executable}" -c "$1" "{home}"', FILL_AND_CHECK)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert len(report["errors"]) == 2
    for error in report["errors"]:
        assert "\n" not in error and "The disk is full" in error
    assert report["leftovers"] == []  # no half-written temporary file is left behind
    assert report["kept"] == ["0", "1", "2"]  # every committed turn, readable
    assert report["after"] == 4 and report["listed"] == [4]  # and the store goes on once space is freed


@pytest.mark.slow
def test_talk_on_a_full_disk_says_so_in_one_line(tmp_path):
    home = tmp_path / "home"
    python = f'"{sys.executable}" -m voicereflect'
    script = (f'echo "I want to talk about my week." | {python} talk --text --no-speak --max-turns 1 >/dev/null 2>&1; '
              f'head -c 4000000 /dev/zero > "{home}/filler" 2>/dev/null; '
              f'echo "This line has no room." | {python} talk --text --no-speak --max-turns 1 >/dev/null 2>err; '
              f'echo "rc=$?"; cat err >&2; rm "{home}/filler"; {python} sessions list --json')
    result = _in_small_disk(home, f"cd {tmp_path} && {script}")
    first, _, listing = result.stdout.partition("\n")
    assert first == "rc=1", (result.stdout, result.stderr)
    errors = [line for line in result.stderr.splitlines() if line.startswith("voicereflect:")]
    assert len(errors) == 1 and "disk is full" in errors[0], result.stderr
    assert "Traceback" not in result.stderr
    sessions = json.loads(listing)
    assert sessions[0]["first_words"].startswith("I want to talk about my week")
    assert sessions[0]["turns"] >= 2
