"""Status badges: every examination status has its own colour, icon and label, all readable in contrast."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from secondopinion.api import pwa

from secondopinion.models import ExamStatus
from secondopinion.pages.badges import STATUS_STYLES, TEXT_COLOR, TONES, status_cells, status_style
from secondopinion.pages.layout import THEME_COLORS, THEME_CSS
from secondopinion.services.examinations import STATUS_LABELS

# WCAG 2 level AA: normal-size text needs a contrast ratio of at least 4.5:1 with its background.
AA_NORMAL_TEXT = 4.5


def relative_luminance(color: str) -> float:
    """Return the WCAG 2 relative luminance of a #rrggbb colour."""
    channels = [int(color[index:index + 2], 16) / 255 for index in (1, 3, 5)]
    linear = [value / 12.92 if value <= 0.04045 else ((value + 0.055) / 1.055) ** 2.4 for value in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast_ratio(first: str, second: str) -> float:
    lighter, darker = sorted((relative_luminance(first), relative_luminance(second)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def test_contrast_ratio_known_values():
    assert contrast_ratio('#000000', '#ffffff') == pytest.approx(21.0)
    assert contrast_ratio('#777777', '#ffffff') == pytest.approx(4.48, abs=0.01)


@pytest.mark.parametrize('tone', sorted(TONES))
def test_tone_contrast_with_white_text(tone: str):
    assert contrast_ratio(TONES[tone], TEXT_COLOR) >= AA_NORMAL_TEXT


def test_every_status_styled():
    assert set(STATUS_STYLES) == set(ExamStatus)


def test_statuses_distinct():
    looks = {(TONES[tone], icon) for tone, icon in STATUS_STYLES.values()}
    labels = set(STATUS_LABELS.values())
    assert len(looks) == len(ExamStatus)
    assert len(labels) == len(ExamStatus)


def test_status_style_plain_label():
    assert status_style('pending') == ('Waiting for a radiologist', TONES['waiting'], 'hourglass_top')
    assert status_cells('under_review') == {'status': 'Under review', 'status_color': TONES['working'],
                                            'status_icon': 'visibility'}


def test_status_style_unknown_status():
    label, background, icon = status_style('archived')
    assert label == 'archived'
    assert background == TONES['neutral']
    assert icon == 'help'


@pytest.mark.parametrize('name', sorted(THEME_COLORS))
def test_theme_colour_contrast_with_white(name: str):
    assert contrast_ratio(THEME_COLORS[name], TEXT_COLOR) >= AA_NORMAL_TEXT


# Quasar's palette (Material Design colours) for the `text-NAME-SHADE` classes that pages use. A class
# missing here fails `test_text_colour_classes_contrast`, so a new colour gets its contrast checked.
QUASAR_PALETTE = {
    'grey-7': '#757575',
    'grey-8': '#616161',
    'grey-9': '#424242',
    'orange-8': '#f57c00',
    'orange-9': '#ef6c00',
    'orange-10': '#e65100',
}
# The class that THEME_CSS defines for warnings written on the page, and its colour there.
WARNING_STRONG = ('text-warning-strong', '#92400e')
PAGES_FOLDER = Path(__file__).resolve().parents[2] / 'secondopinion' / 'pages'
TEXT_COLOUR_CLASS = re.compile(r'\btext-([a-z]+-\d+)\b')


def text_colour_classes() -> dict[str, list[str]]:
    """Return each `text-NAME-SHADE` class in the page sources with the places that use it, icons left out.

    Icons are left out because the ones that carry meaning repeat a label beside them, and WCAG 2
    exempts decorative images from the text contrast minimum.
    """
    found: dict[str, list[str]] = {}
    for source in sorted([*PAGES_FOLDER.glob('*.py'), *PAGES_FOLDER.glob('*.js')]):
        for number, line in enumerate(source.read_text(encoding='utf-8').splitlines(), start=1):
            if 'ui.icon(' in line or '<q-icon' in line:
                continue
            for match in TEXT_COLOUR_CLASS.finditer(line):
                found.setdefault(match.group(1), []).append(f'{source.name}:{number}')
    return found


def test_warning_strong_class_colour():
    assert f'.{WARNING_STRONG[0]} {{ color: {WARNING_STRONG[1]} !important; }}' in THEME_CSS
    assert contrast_ratio(WARNING_STRONG[1], '#ffffff') >= AA_NORMAL_TEXT
    assert contrast_ratio(WARNING_STRONG[1], pwa.BACKGROUND_COLOR) >= AA_NORMAL_TEXT


def test_text_colour_classes_known():
    unknown = {name: places for name, places in text_colour_classes().items() if name not in QUASAR_PALETTE}
    assert not unknown, f'add the hex values of these colours from Quasar\'s palette: {unknown}'


def test_text_colour_classes_contrast():
    """Text in a Quasar colour class must reach 4.5:1 on white, the background of cards and dialogs."""
    too_light = {name: places for name, places in text_colour_classes().items()
                 if name in QUASAR_PALETTE and contrast_ratio(QUASAR_PALETTE[name], '#ffffff') < AA_NORMAL_TEXT}
    assert not too_light, f'text colours below 4.5:1 on white (use text-warning-strong or grey-8): {too_light}'


def test_contrast_check_catches_orange():
    assert contrast_ratio(QUASAR_PALETTE['orange-9'], '#ffffff') < AA_NORMAL_TEXT
