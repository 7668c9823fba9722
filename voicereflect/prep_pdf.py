"""The session-prep brief as an A4 PDF: fpdf2, with the DejaVu Sans that matplotlib bundles.

Items and headings are never split across pages; the footer says on every page that these
are the person's own notes, not a clinical document.
"""

from __future__ import annotations

import io
from pathlib import Path

from voicereflect.prep import (NOT_CLINICAL, Brief, Rating, Section, rating_text, require_module, chart_png, empty_line,
                               sections, title_lines)

PDF_LINE_MM = 5.0
_INK, _GREY, _ACCENT = (34, 34, 34), (105, 105, 105), (44, 74, 117)


def pdf_bytes(brief: Brief) -> bytes:
    """The brief as an A4 PDF (fpdf2, DejaVu Sans bundled with matplotlib, so any script it covers prints)."""
    require_module("matplotlib")
    require_module("fpdf")
    import matplotlib
    from fpdf import FPDF

    fonts = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    heading, period = title_lines(brief)

    class BriefPdf(FPDF):
        def footer(self) -> None:
            self.set_y(-12)
            self.set_font("DejaVu", "", 7.5)
            self.set_text_color(*_GREY)
            self.cell(0, 5, f"{heading} \u00b7 my own notes, not a clinical document \u00b7 page {self.page_no()} of {{nb}}",
                      align="C")

    pdf = BriefPdf(format="A4")
    pdf.set_margins(18, 16, 18)
    pdf.set_auto_page_break(True, margin=18)
    for style, name in (("", "DejaVuSans"), ("B", "DejaVuSans-Bold"), ("I", "DejaVuSans-Oblique")):
        pdf.add_font("DejaVu", style, str(fonts / f"{name}.ttf"))
    pdf.set_title(heading)
    pdf.add_page()
    _pdf_text(pdf, heading, 17, "B", _ACCENT, line_mm=8)
    _pdf_text(pdf, period, 10.5, "B", _INK)
    _pdf_text(pdf, NOT_CLINICAL, 9, "I", _GREY, gap_mm=3)
    if not brief.sessions:
        _pdf_text(pdf, empty_line(brief), 10.5)
    for section in sections(brief) if brief.sessions else []:
        _pdf_section(pdf, section)
    if brief.sessions and brief.ratings:
        _pdf_chart(pdf, brief.ratings)
    return bytes(pdf.output())


def _pdf_text(pdf, text: str, size: float, style: str = "", color=_INK, *, indent_mm: float = 0,
              line_mm: float = PDF_LINE_MM, gap_mm: float = 0.8) -> None:
    pdf.set_font("DejaVu", style, size)
    pdf.set_text_color(*color)
    pdf.set_x(pdf.l_margin + indent_mm)
    pdf.multi_cell(pdf.epw - indent_mm, line_mm, text, align="L", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(gap_mm)


def _pdf_height(pdf, text: str, size: float, style: str = "", indent_mm: float = 0) -> float:
    pdf.set_font("DejaVu", style, size)
    lines = pdf.multi_cell(pdf.epw - indent_mm, PDF_LINE_MM, text, align="L", dry_run=True, output="LINES")
    return len(lines) * PDF_LINE_MM + 1


def _pdf_keep(pdf, height_mm: float) -> None:
    """Start a new page unless ``height_mm`` still fits: items are never split across pages."""
    if pdf.get_y() + height_mm > pdf.page_break_trigger:
        pdf.add_page()


def _pdf_item(pdf, lead: str, text: str, quoted: bool) -> None:
    if quoted:
        _pdf_keep(pdf, PDF_LINE_MM + _pdf_height(pdf, text, 10, "I", 5))
        _pdf_text(pdf, lead, 8.5, "", _GREY, line_mm=4.5, gap_mm=0.3)
        top_mm = pdf.get_y()
        _pdf_text(pdf, text, 10, "I", _INK, indent_mm=5, gap_mm=0)
        pdf.set_draw_color(154, 170, 187)
        pdf.set_line_width(0.7)
        pdf.line(pdf.l_margin + 1.5, top_mm + 0.5, pdf.l_margin + 1.5, pdf.get_y() - 0.5)
        pdf.ln(1.8)
        return
    _pdf_keep(pdf, _pdf_height(pdf, f"{lead}: {text}", 10, "", 4))
    pdf.set_text_color(*_INK)
    pdf.set_font("DejaVu", "", 10)
    pdf.cell(4, PDF_LINE_MM, "\u2022")
    pdf.set_left_margin(pdf.l_margin + 4)
    pdf.set_font("DejaVu", "B", 10)
    pdf.write(PDF_LINE_MM, f"{lead}: ")
    pdf.set_font("DejaVu", "", 10)
    pdf.write(PDF_LINE_MM, text)
    pdf.set_left_margin(pdf.l_margin - 4)
    pdf.ln(PDF_LINE_MM + 1.2)


def _pdf_heading(pdf, title: str, next_mm: float) -> None:
    _pdf_keep(pdf, 11 + next_mm)
    pdf.ln(2)
    _pdf_text(pdf, title, 12.5, "B", _ACCENT, line_mm=6.5, gap_mm=0)
    pdf.set_draw_color(204, 204, 221)
    pdf.set_line_width(0.3)
    pdf.line(pdf.l_margin, pdf.get_y(), pdf.l_margin + pdf.epw, pdf.get_y())
    pdf.ln(2)


def _pdf_section(pdf, section: Section) -> None:
    first = section.items[0] if section.items else ("", section.empty)
    _pdf_heading(pdf, section.title, _pdf_height(pdf, f"{first[0]}: {first[1]}", 10, "", 5) + PDF_LINE_MM)
    if not section.items:
        _pdf_text(pdf, section.empty, 9.5, "I", _GREY)
    for lead, text in section.items:
        _pdf_item(pdf, lead, text, section.quoted)
    if section.note and section.items:
        _pdf_text(pdf, section.note, 8.5, "I", _GREY, line_mm=4.5)


def _pdf_chart(pdf, ratings: tuple[Rating, ...]) -> None:
    size_in = (6.4, 1.45)
    width_mm = pdf.epw * 0.8
    height_mm = width_mm * size_in[1] / size_in[0]
    _pdf_heading(pdf, "Intensity over time", height_mm)
    values = ", ".join(f"{d} {v}" for d, v in map(rating_text, ratings))
    png = chart_png(ratings, dpi=220, size_in=size_in)
    pdf.image(io.BytesIO(png), x=pdf.l_margin, w=width_mm, alt_text=f"How intense each session felt (1-10): {values}")
