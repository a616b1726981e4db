"""Status badges: every examination status has its own colour, icon and label, all readable in contrast."""

from __future__ import annotations

import pytest

from secondopinion.models import ExamStatus
from secondopinion.pages.badges import STATUS_STYLES, TEXT_COLOR, TONES, status_cells, status_style
from secondopinion.pages.layout import THEME_COLORS
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
