"""The session-prep brief: the person's own words since a date, as Markdown, one HTML file or a PDF.

The brief is built from what the person said and marked (flagged turns, rehearsed lines,
session wishes, ratings, recaps built from their words) and never from assistant turns or
model-written recaps. matplotlib and fpdf2 are imported here only, and only when a chart or
a PDF is made.
"""

from __future__ import annotations

import base64
import html
import io
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Iterable

from voicereflect.errors import VoiceReflectError
from voicereflect.patterns import Patterns, count_patterns, in_period, local_time, top
from voicereflect.storage import atomic_write, store_io_error
from voicereflect.types import SessionRecord, Turn

MAX_QUOTE_WORDS = 80  # keeps the brief to one or two pages; the full turn stays in the session
MAX_LINE_WORDS = 35
GUIDE_LABELS = {"open": "open reflection", "conversation": "a difficult conversation", "reaction": "a reaction",
                "rehearse": "rehearsal", "prep": "session prep"}
NOT_CLINICAL = ("My own words from reflecting aloud with voicereflect, an AI reflection aid. "
                "Not a clinical document: nothing here is a diagnosis or an assessment.")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


class PrepError(VoiceReflectError):
    """The brief could not be written where asked."""


@dataclass(frozen=True)
class Moment:
    """Something the person said, with the local date (YYYY-MM-DD) of its session."""

    day: str
    text: str
    session_id: str


@dataclass(frozen=True)
class SessionLine:
    """One session of the period: date, guide, status, and a recap in the person's words or their first words."""

    day: str
    guide: str
    status: str
    text: str
    from_recap: bool


@dataclass(frozen=True)
class Rating:
    """How intense a session felt (1-10), and when it started (local ISO time)."""

    at: str
    rating: int


@dataclass(frozen=True)
class Brief:
    """Everything the prep brief shows, as plain data.

    Attributes:
        since: local date the period starts (None: from the first session).
        until: local date the brief was made.
        sessions: one line per session, oldest first.
        flagged: turns the person marked "bring this to therapy".
        rehearsed: the last attempt of each rehearse session.
        wishes: what the person said they want from the next session (prep guide).
        ratings: intensity ratings, oldest first.
        patterns: recurring themes, emotion words and people.
    """

    since: str | None
    until: str
    sessions: tuple[SessionLine, ...]
    flagged: tuple[Moment, ...]
    rehearsed: tuple[Moment, ...]
    wishes: tuple[Moment, ...]
    ratings: tuple[Rating, ...]
    patterns: Patterns


# -- building -------------------------------------------------------------------------


def _clean(text: str, max_words: int) -> str:
    """One line of at most ``max_words`` words (then "..."); a lone surrogate becomes U+FFFD."""
    words = _LONE_SURROGATE.sub("\ufffd", text).removesuffix(" ...").split()
    cut = len(words) > max_words or text.endswith(" ...")  # first_words marks its own cut with " ..."
    return " ".join(words[:max_words]) + ("\u2026" if cut else "")


def _moment(record: SessionRecord, turn: Turn) -> Moment:
    return Moment(_day(record), _clean(turn.text, MAX_QUOTE_WORDS), record.summary.id)


def _day(record: SessionRecord) -> str:
    return local_time(record.summary.started_at).date().isoformat()


def _marked(record: SessionRecord, mark: str) -> list[Turn]:
    return [t for t in record.turns if t.role == "user" and any(e.get("type") == mark for e in t.events)]


def _session_line(record: SessionRecord) -> SessionLine:
    notes, summary = record.notes, record.summary
    # Only recaps built from the person's words: a model-written recap is an interpretation.
    from_recap = bool(notes.recap.strip()) and notes.recap_source == "words"
    text = _clean(notes.recap if from_recap else summary.first_words, MAX_LINE_WORDS)
    return SessionLine(_day(record), summary.guide, summary.status, text, from_recap)


def build_brief(records: Iterable[SessionRecord], since: datetime | None, now: datetime | None = None) -> Brief:
    """Gather the brief for the sessions started at or after ``since`` (aware; None for all).

    Only the person's turns are read; flagged indexes that point at an assistant turn
    (or past the end) are skipped. ``now`` (default: the present) dates the brief.
    """
    chosen = in_period(records, since)
    flagged, rehearsed, wishes, ratings = [], [], [], []
    for record in chosen:
        turns = record.turns
        flagged += [_moment(record, turns[i]) for i in record.notes.flagged
                    if 0 <= i < len(turns) and turns[i].role == "user" and turns[i].text.strip()]
        attempts = [t for t in _marked(record, "rehearsal_attempt") if t.text.strip()]
        rehearsed += [_moment(record, attempts[-1])] if attempts else []
        wishes += [_moment(record, t) for t in _marked(record, "session_wish") if t.text.strip()]
        if record.notes.rating is not None:
            ratings.append(Rating(local_time(record.summary.started_at).isoformat(), int(record.notes.rating)))
    return Brief(since=since.date().isoformat() if since else None,
                 until=(now or datetime.now().astimezone()).date().isoformat(),
                 sessions=tuple(_session_line(r) for r in chosen), flagged=tuple(flagged),
                 rehearsed=tuple(rehearsed), wishes=tuple(wishes), ratings=tuple(ratings),
                 patterns=count_patterns(chosen, since))


# -- shared layout ------------------------------------------------------------------


@dataclass(frozen=True)
class Section:
    """One part of the brief, the same in every format: ``(lead, text)`` items, or ``empty``."""

    title: str
    items: tuple[tuple[str, str], ...]
    quoted: bool = False
    empty: str = ""
    note: str = ""


def short_date(day: str, year: bool = False) -> str:
    """``2026-03-03`` as ``Tue 3 Mar`` (``Tue 3 Mar 2026`` with ``year``)."""
    when = date.fromisoformat(day)
    return f"{when:%a} {when.day} {when:%b}" + (f" {when.year}" if year else "")


def _long_date(day: str) -> str:
    when = date.fromisoformat(day)
    return f"{when.day} {when:%b %Y}"


def title_lines(brief: Brief) -> tuple[str, str]:
    """The heading and the period line, e.g. ``3 Mar 2026 to 10 Mar 2026 · 5 sessions``."""
    start = brief.since or (brief.sessions[0].day if brief.sessions else brief.until)
    count = len(brief.sessions)
    period = f"{_long_date(start)} to {_long_date(brief.until)}"
    return "Notes for my next therapy session", f"{period} \u00b7 {count} session{'s' if count != 1 else ''}"


def empty_line(brief: Brief) -> str:
    """What an empty period says: ``No sessions since Tue 3 Mar 2026.``"""
    return f"No sessions since {short_date(brief.since, True)}." if brief.since else "No sessions yet."


def _session_item(line: SessionLine) -> tuple[str, str]:
    lead = f"{short_date(line.day)} \u00b7 {GUIDE_LABELS.get(line.guide, line.guide)}"
    if line.status not in ("complete", "stopped"):
        lead += f" ({line.status})"
    text = line.text if line.from_recap else (f"\u201c{line.text}\u201d" if line.text else "(nothing said)")
    return lead, text


def _moments(items: tuple[Moment, ...]) -> tuple[tuple[str, str], ...]:
    return tuple((short_date(m.day), m.text) for m in items)


def _pattern_text(items) -> str:
    parts = []
    for item in items:
        heard = f" ({', '.join(w for w, _ in item.words[:3])})" if item.kind == "emotions" else ""
        where = "1 session" if item.sessions == 1 else f"{item.sessions} sessions"
        parts.append(f"{item.label}{heard}: {item.total} times in {where}")
    return "; ".join(parts)


def sections(brief: Brief) -> list[Section]:
    """The brief's parts in order, except intensity (each format draws that its own way)."""
    p = brief.patterns
    recurring = [(lead, _pattern_text(top(items))) for lead, items in
                 (("Themes", p.themes), ("Feeling words I used", p.emotions), ("People", p.people)) if top(items)]
    return [
        Section("Since last session", tuple(_session_item(s) for s in brief.sessions)),
        Section("Flagged moments", _moments(brief.flagged), quoted=True, empty="Nothing flagged in this period."),
        Section("Rehearsed lines", _moments(brief.rehearsed), quoted=True, empty="No rehearsals in this period."),
        Section("What I want from this session", _moments(brief.wishes), quoted=True,
                empty="Not noted yet (the prep guide asks: voicereflect talk --guide prep)."),
        Section("Recurring themes and people", tuple(recurring), empty="Nothing came up more than once.",
                note="Counted from my own words on this device: how often words were said, not what they mean."),
    ]


def rating_text(rating: Rating) -> tuple[str, str]:
    return short_date(rating.at[:10]), f"{rating.rating}/10"


# -- Markdown ---------------------------------------------------------------------------


def render_markdown(brief: Brief) -> str:
    """The brief as Markdown; intensity is a plain list of dated ratings."""
    heading, period = title_lines(brief)
    lines = [f"# {heading}", "", f"**{period}**", "", f"_{NOT_CLINICAL}_", ""]
    if not brief.sessions:
        return "\n".join(lines + [empty_line(brief), ""])
    for section in sections(brief):
        lines += [f"## {section.title}", ""]
        for lead, text in section.items:
            lines.append(f"- {lead}:" if section.quoted else f"- **{lead}:** {text}")
            lines += [f"  > {text}"] if section.quoted else []
        lines += [section.empty] if not section.items else []
        lines += ["", f"_{section.note}_"] if section.note and section.items else []
        lines.append("")
    if brief.ratings:
        lines += ["## Intensity over time", "", "How intense each session felt (1-10):", ""]
        lines += [f"- {day}: {value}" for day, value in map(rating_text, brief.ratings)] + [""]
    return "\n".join(lines)


# -- chart ----------------------------------------------------------------------------


def require_module(module: str) -> None:
    """Turn a missing optional library into a one-line hint instead of a traceback."""
    import importlib.util

    if importlib.util.find_spec(module) is None:
        package = {"fpdf": "fpdf2"}.get(module, module)
        raise PrepError(f"Making this brief needs {package}, which is not installed. Run: pip install {package} "
                        "(or use --format md).")


def chart_png(ratings: tuple[Rating, ...], dpi: int = 150, size_in: tuple[float, float] = (6.4, 1.7)) -> bytes:
    """A small line chart of the ratings over time, as PNG bytes (matplotlib, no display needed)."""
    require_module("matplotlib")
    from matplotlib.dates import DateFormatter
    from matplotlib.figure import Figure

    times = [datetime.fromisoformat(r.at).replace(tzinfo=None) for r in ratings]
    figure = Figure(figsize=size_in, dpi=dpi)
    axes = figure.add_subplot()
    axes.plot(times, [r.rating for r in ratings], color="#4a6fa5", marker="o", linewidth=1.6, markersize=5)
    axes.set_ylim(0.5, 10.5)
    axes.set_yticks([1, 4, 7, 10])
    axes.set_ylabel("intensity (1-10)", fontsize=7, color="#555555")
    first = min(times).replace(hour=0, minute=0, second=0, microsecond=0)
    last = max(times).replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    axes.set_xlim(first, last)
    days = (last - first).days
    step = days // 8 + 1  # at most 8 labels
    # Each day is a band between midnights, labelled at its noon; a point sits in its day's band.
    axes.set_xticks([first + timedelta(days=d, hours=12) for d in range(0, days, step)])
    axes.set_xticks([first + timedelta(days=d) for d in range(0, days + 1, step)], minor=True)
    axes.xaxis.set_major_formatter(DateFormatter("%a %d %b" if step == 1 else "%d %b"))
    axes.tick_params(axis="x", which="major", length=0)
    axes.grid(axis="x", which="minor", color="#eeeeee", linewidth=0.6)
    axes.tick_params(labelsize=7, colors="#444444")
    axes.grid(axis="y", color="#dddddd", linewidth=0.6)
    for side in ("top", "right"):
        axes.spines[side].set_visible(False)
    figure.tight_layout(pad=0.4)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


# -- HTML -------------------------------------------------------------------------------

_CSS = """
body{font:15px/1.5 "DejaVu Sans",system-ui,sans-serif;color:#222;max-width:46rem;margin:2rem auto;padding:0 1rem}
h1{font-size:1.5rem;margin:0 0 .2rem}h2{font-size:1.05rem;margin:1.4rem 0 .4rem;border-bottom:1px solid #ccd;
padding-bottom:.15rem;color:#2c4a75}.period{font-weight:bold;margin:0}.notice{color:#555;font-style:italic;
margin:.3rem 0 1rem}ul{padding-left:1.1rem;margin:.3rem 0}li{margin:.25rem 0}.lead{font-weight:bold}
.when{color:#666;font-size:.85rem}blockquote{margin:.1rem 0 .6rem;padding:.1rem .7rem;border-left:3px solid #9ab;
font-style:italic}.note{color:#666;font-size:.85rem}img{max-width:100%}
@media print{@page{size:A4;margin:16mm}body{font-size:10.5pt;margin:0;max-width:none;padding:0}
h2{break-after:avoid}li,blockquote,figure{break-inside:avoid}}
"""


def render_html(brief: Brief) -> str:
    """The brief as one self-contained HTML page: inline CSS (with print rules), chart as a data URL."""
    heading, period = title_lines(brief)
    e = html.escape
    body = [f"<h1>{e(heading)}</h1>", f'<p class="period">{e(period)}</p>', f'<p class="notice">{e(NOT_CLINICAL)}</p>']
    if not brief.sessions:
        body.append(f"<p>{e(empty_line(brief))}</p>")
    for section in sections(brief) if brief.sessions else []:
        body.append(f"<h2>{e(section.title)}</h2>")
        if not section.items:
            body.append(f'<p class="note">{e(section.empty)}</p>')
        elif section.quoted:
            body += [f'<div class="when">{e(lead)}</div><blockquote>{e(text)}</blockquote>' for lead, text in section.items]
        else:
            body += ["<ul>"] + [f'<li><span class="lead">{e(lead)}:</span> {e(text)}</li>' for lead, text in section.items]
            body.append("</ul>")
        if section.note and section.items:
            body.append(f'<p class="note">{e(section.note)}</p>')
    if brief.sessions and brief.ratings:
        png = base64.b64encode(chart_png(brief.ratings)).decode("ascii")
        values = ", ".join(f"{d} {v}" for d, v in map(rating_text, brief.ratings))
        body += ["<h2>Intensity over time</h2>", '<p class="note">How intense each session felt (1-10).</p>',
                 f'<figure style="margin:0"><img src="data:image/png;base64,{png}" alt="Intensity ratings: {e(values)}">'
                 "</figure>"]
    return ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width\"><title>{e(heading)}</title>"
            f"<style>{_CSS}</style></head>\n<body>\n" + "\n".join(body) + "\n</body></html>\n")


def pdf_bytes(brief: Brief) -> bytes:
    """The brief as an A4 PDF (see :mod:`voicereflect.prep_pdf`)."""
    from voicereflect.prep_pdf import pdf_bytes as render

    return render(brief)


def write_new(path: Path, data: bytes) -> Path:
    """Create ``path`` (0600) with ``data``; never replaces an existing file.

    Raises:
        PrepError: the file exists, or its folder does not.
    """
    path = Path(path)
    exists = PrepError(f"{path} already exists; the brief never overwrites. Choose another --out or move it aside.")
    if path.exists() or path.is_symlink():
        raise exists
    if not path.parent.is_dir():
        raise PrepError(f"Folder {path.parent} does not exist. Create it, or choose another --out.")
    try:
        atomic_write(path, lambda f: f.write(data), replace=False)
    except FileExistsError as exc:
        raise exists from exc
    except OSError as exc:
        raise store_io_error("write", path, exc) from exc
    return path


def render_pdf(brief: Brief, path: Path) -> Path:
    """Write the brief as a new PDF file (0600) at ``path`` and return it; see :func:`write_new`."""
    return write_new(path, pdf_bytes(brief))
