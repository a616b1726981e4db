"""Fonts of the report PDF, and the choice of font for each character of the printed text.

DejaVu Sans covers Latin, Greek and Cyrillic. Droid Sans Fallback covers the CJK Unified Ideographs,
Hiragana, Katakana, Hangul syllables and CJK punctuation. Text runs switch between the two per character,
so one paragraph can mix "Şükrü Yılmaz" and "山田太郎". Both are TrueType fonts, so ReportLab embeds
subsets of the glyphs used (as /FontFile2), and every PDF viewer shows the same glyphs.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path
from xml.sax.saxutils import escape

from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas

FONT_DIR = Path(__file__).resolve().parents[2] / 'assets' / 'fonts'

FONT = 'DejaVuSans'
FONT_BOLD = 'DejaVuSans-Bold'
# NOTE: Droid Sans Fallback has one weight, so CJK text in headings and bold names prints in regular weight.
FONT_CJK = 'DroidSansFallback'

# Control characters, which a PDF cannot show. Tabs and line feeds are converted before this applies.
CONTROL_CHARACTERS = re.compile(r'[\x00-\x08\x0b-\x1f\x7f]')

_fonts_lock = threading.Lock()
_fonts_registered = False
_fallback_cache: dict[str, bool] = {}


def register_fonts() -> None:
    """Register the report fonts with ReportLab once per process."""
    global _fonts_registered
    with _fonts_lock:
        if _fonts_registered:
            return
        pdfmetrics.registerFont(TTFont(FONT, str(FONT_DIR / 'DejaVuSans.ttf')))
        pdfmetrics.registerFont(TTFont(FONT_BOLD, str(FONT_DIR / 'DejaVuSans-Bold.ttf')))
        pdfmetrics.registerFont(TTFont(FONT_CJK, str(FONT_DIR / 'DroidSansFallback.ttf')))
        # Without a family, <b> inside a paragraph would fall back to Helvetica-Bold and lose non-Latin glyphs.
        pdfmetrics.registerFontFamily(FONT, normal=FONT, bold=FONT_BOLD, italic=FONT, boldItalic=FONT_BOLD)
        pdfmetrics.registerFontFamily(FONT_CJK, normal=FONT_CJK, bold=FONT_CJK, italic=FONT_CJK,
                                      boldItalic=FONT_CJK)
        _fonts_registered = True


def normalize(text: str) -> str:
    """Return the text with Unix line breaks, tabs as four spaces and control characters removed."""
    text = (text or '').replace('\r\n', '\n').replace('\r', '\n').replace('\t', '    ')
    return CONTROL_CHARACTERS.sub('', text)


def font_runs(text: str) -> list[tuple[str, bool]]:
    """Split text into runs of (text, needs the CJK font), keeping characters that DejaVu Sans has in DejaVu.

    A character that neither font has stays in DejaVu Sans, which prints it as an empty box.
    """
    runs: list[tuple[str, bool]] = []
    for character in text:
        use_cjk = _needs_fallback(character)
        if runs and runs[-1][1] == use_cjk:
            runs[-1] = (runs[-1][0] + character, use_cjk)
        else:
            runs.append((character, use_cjk))
    return runs


def has_cjk(text: str) -> bool:
    """Return whether any character of the text prints in the CJK font."""
    return any(_needs_fallback(character) for character in text)


def markup(text: str) -> str:
    """Escape plain text for ReportLab paragraph markup, choose the font per run and turn line breaks into <br/>."""
    parts = []
    for run, use_cjk in font_runs(normalize(text)):
        escaped = escape(run).replace('\n', '<br/>')
        parts.append(f'<font name="{FONT_CJK}">{escaped}</font>' if use_cjk else escaped)
    return ''.join(parts)


def draw_text(canvas: Canvas, x: float, y: float, text: str, *, font: str, size: float) -> None:
    """Draw one line of plain text on the canvas from x, switching to the CJK font where needed."""
    for run, use_cjk in font_runs(normalize(text).replace('\n', ' ')):
        run_font = FONT_CJK if use_cjk else font
        canvas.setFont(run_font, size)
        canvas.drawString(x, y, run)
        x += pdfmetrics.stringWidth(run, run_font, size)


def _needs_fallback(character: str) -> bool:
    cached = _fallback_cache.get(character)
    if cached is None:
        code = ord(character)
        in_dejavu = code in pdfmetrics.getFont(FONT).face.charToGlyph
        cached = not in_dejavu and code in pdfmetrics.getFont(FONT_CJK).face.charToGlyph
        _fallback_cache[character] = cached
    return cached
