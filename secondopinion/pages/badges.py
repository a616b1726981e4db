"""Badges: the status of an examination, and other short states, in one set of colours.

Every badge has white text on a background from `TONES`. Each background has a contrast ratio of at
least 4.5:1 with white, as WCAG 2 level AA requires for normal-size text, which
tests/pages/test_badges.py checks.
"""

from __future__ import annotations

from html import escape

from nicegui import ui

from ..models import ExamStatus
from ..i18n import _
from ..services.examinations import STATUS_LABELS

TEXT_COLOR = '#ffffff'
# Background colours by meaning (Tailwind's 600 and 700 shades).
TONES = {
    'neutral': '#4b5563',
    'warning': '#b45309',
    'waiting': '#1d4ed8',
    'working': '#6d28d9',
    'ready': '#0f766e',
    'done': '#15803d',
    'danger': '#b91c1c',
}

# Tone and Material icon of each examination status. The label comes from the services' STATUS_LABELS,
# which emails and the data export use too.
STATUS_STYLES = {
    ExamStatus.DRAFT: ('neutral', 'edit_note'),
    ExamStatus.AWAITING_PAYMENT: ('warning', 'payments'),
    ExamStatus.PENDING: ('waiting', 'hourglass_top'),
    ExamStatus.UNDER_REVIEW: ('working', 'visibility'),
    ExamStatus.REPORTED: ('ready', 'description'),
    ExamStatus.COMPLETED: ('done', 'task_alt'),
    ExamStatus.CANCELLED: ('danger', 'cancel'),
}
UNKNOWN_STATUS_STYLE = ('neutral', 'help')

BADGE_CLASSES = 'text-body2 q-px-sm q-py-xs'


def badge(text: str, tone: str, icon: str | None = None) -> ui.badge:
    """Add a badge with white text on the tone's background, and an optional icon before the text."""
    return _badge(text, TONES[tone], icon)


def _badge(text: str, background: str, icon: str | None) -> ui.badge:
    element = ui.badge(text).classes(BADGE_CLASSES).style(f'background-color: {background}; color: {TEXT_COLOR}')
    if icon:
        with element:
            # NiceGUI renders an element's text before its children, so the flex order moves the icon in
            # front. The label repeats the icon's meaning, so screen readers skip the icon.
            ui.icon(icon, size='1.1em').classes('q-mr-xs').style('order: -1').props('aria-hidden=true')
    return element


def badge_html(text: str, tone: str, icon: str | None = None) -> str:
    """Return the markup of `badge` as static HTML, for text blocks built as one `ui.html` element.

    A `ui.badge` with its icon is two NiceGUI elements and the costliest part of a list card to build.
    The classes here are those that Quasar 2 gives a rendered QBadge and QIcon, so both look alike.
    """
    return _badge_html(text, TONES[tone], icon)


def status_badge_html(status: str) -> str:
    """Return the markup of `status_badge` as static HTML, like `badge_html`."""
    label, background, icon = status_style(status)
    return _badge_html(label, background, icon)


def _badge_html(text: str, background: str, icon: str | None) -> str:
    icon_html = (f'<i class="q-icon notranslate material-icons q-mr-xs" style="font-size: 1.1em" '
                 f'aria-hidden="true">{escape(icon)}</i>' if icon else '')
    return (f'<span class="q-badge flex inline items-center no-wrap q-badge--single-line {BADGE_CLASSES}" '
            f'style="background-color: {background}; color: {TEXT_COLOR}">{icon_html}{escape(text)}</span>')


def status_style(status: str) -> tuple[str, str, str]:
    """Return the label, background colour and icon of an examination status."""
    try:
        known = ExamStatus(status)
    except ValueError:
        tone, icon = UNKNOWN_STATUS_STYLE
        return status, TONES[tone], icon
    tone, icon = STATUS_STYLES[known]
    return _(STATUS_LABELS[known]), TONES[tone], icon


def status_badge(status: str) -> ui.badge:
    """Add the badge of an examination status: its colour, icon and plain-language label."""
    label, background, icon = status_style(status)
    return _badge(label, background, icon)


def status_cells(status: str) -> dict[str, str]:
    """Return the row fields that `STATUS_CELL_SLOT` shows for a status in a table column named "status"."""
    label, background, icon = status_style(status)
    return {'status': label, 'status_color': background, 'status_icon': icon}


# Quasar template for the "status" column of a ui.table whose rows carry `status_cells`.
STATUS_CELL_SLOT = f'''
<q-td :props="props">
  <q-badge class="{BADGE_CLASSES}" :style="{{backgroundColor: props.row.status_color, color: '{TEXT_COLOR}'}}">
    <q-icon :name="props.row.status_icon" size="1.1em" class="q-mr-xs" aria-hidden="true" />{{{{ props.value }}}}
  </q-badge>
</q-td>
'''
