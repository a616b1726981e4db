"""The landing page "/": what the service does, its prices and turnaround, who reports, and privacy."""

from __future__ import annotations

from nicegui import ui

from ..config import get_settings
from ..i18n import N_, _, ngettext
from ..services.examinations import MODALITIES
from ..services.payments import format_money, price_list
from .layout import HOME_BY_ROLE, current_actor, frame

STEPS = [
    ('cloud_upload', N_('Upload your images'),
     N_('Add the DICOM files of your CT, MRI, X-ray or ultrasound, the whole CD as a folder or a zip file, or a '
        'link to images stored elsewhere.')),
    ('help_outline', N_('Ask your question'),
     N_('Tell the radiologist what you want to know, and attach the first report if you have one.')),
    ('payments', N_('Pay the fixed price'),
     N_('The price depends on the type of examination and is shown before you pay.')),
    ('assignment_turned_in', N_('A radiologist reports'),
     N_('One radiologist takes your case, reviews the images and writes a signed report. You get it as a PDF, '
        'by email and in the app.')),
]

CARD_CLASSES = 'w-full q-pa-md'


def format_duration(hours: int) -> str:
    """Return a duration in words: whole days from 48 hours on, hours otherwise, e.g. "24 hours", "3 days"."""
    if hours >= 48 and hours % 24 == 0:
        return ngettext('{count} day', '{count} days', hours // 24)
    return ngettext('{count} hour', '{count} hours', hours)


def landing_page() -> None:
    actor = current_actor()
    with frame(_('Second opinions on radiology images'), actor):
        _introduction(HOME_BY_ROLE.get(actor.role) if actor else None)
        _how_it_works()
        _prices_and_turnaround()
        _radiologists_and_privacy()
        if actor is None:
            with ui.card().classes(CARD_CLASSES + ' items-center'):
                ui.label(_('Ready for a second opinion?')).classes('text-h6')
                _sign_up_buttons('closing')


def _sign_up_buttons(marker: str) -> None:
    with ui.row().classes('gap-2'):
        ui.button(_('Create an account'), on_click=lambda: ui.navigate.to('/register')).mark(f'{marker}-register')
        ui.button(_('Sign in'), on_click=lambda: ui.navigate.to('/login')).props('outline').mark(f'{marker}-sign-in')


def _introduction(home: str | None) -> None:
    with ui.card().classes('w-full q-pa-lg'):
        ui.label(_('A second opinion on your scan, from a qualified radiologist')).classes('text-h5')
        ui.label(_('Upload the images of your CT, MRI or X-ray, describe your question, and receive a '
                 'written report by email and in the app.')).classes('text-body1')
        if home:
            ui.button(_('Go to my page'), on_click=lambda: ui.navigate.to(home))
        else:
            _sign_up_buttons('landing')


def _how_it_works() -> None:
    with ui.card().classes(CARD_CLASSES):
        ui.label(_('How it works')).classes('text-h6')
        for number, (icon, title, text) in enumerate(STEPS, start=1):
            with ui.row().classes('no-wrap items-start gap-3'):
                ui.icon(icon, size='1.75rem').classes('text-primary q-mt-xs')
                with ui.column().classes('gap-0 min-w-0'):
                    ui.label(f'{number}. {_(title)}').classes('text-subtitle1 text-weight-medium')
                    ui.label(_(text)).classes('text-body2')


def _prices_and_turnaround() -> None:
    settings = get_settings()
    with ui.card().classes(CARD_CLASSES).mark('prices'):
        ui.label(_('Prices')).classes('text-h6')
        # A grid instead of a table: its first column wraps, so the prices fit a phone screen.
        with ui.grid(columns='minmax(0, 1fr) auto auto').classes('w-full gap-x-4 gap-y-1 text-body2'):
            for index, heading in enumerate((_('Examination'), _('Routine'), _('Urgent'))):
                ui.label(heading).classes('text-weight-medium' + ('' if index == 0 else ' text-right'))
            for entry in price_list():
                ui.label(_(MODALITIES.get(entry.modality, entry.modality)) if entry.modality
                         else _('Any other examination'))
                ui.label(format_money(entry.routine_cents, settings.currency)).classes('text-right')
                ui.label(format_money(entry.urgent_cents, settings.currency)).classes('text-right')
        ui.label(_('Urgent cases cost {percent}% more and are reviewed first.',
                   percent=settings.urgent_surcharge_percent)) \
            .classes('text-caption')

    with ui.card().classes(CARD_CLASSES).mark('turnaround'):
        ui.label(_('When you get your report')).classes('text-h6')
        ui.label(_('Routine cases: within {duration} of your payment.',
                   duration=format_duration(settings.report_turnaround_hours))).classes('text-body2')
        ui.label(_('Urgent cases: within {duration} of your payment.',
                   duration=format_duration(settings.urgent_report_turnaround_hours))).classes('text-body2')
        ui.label(_('When the report is ready, we tell you by email, text message or both, as you choose in your '
                 'profile. Until a radiologist accepts your case, you can cancel it and get your money back.')) \
            .classes('text-body2')


def _radiologists_and_privacy() -> None:
    with ui.card().classes(CARD_CLASSES):
        ui.label(_('Our radiologists')).classes('text-h6')
        ui.label(_('Every report is written by a qualified radiologist: a specialist physician licensed to report '
                 'medical images. Only the practice creates radiologist accounts, each with the doctor\'s license '
                 'number, and the signed report names the radiologist with their specialty and license number.')) \
            .classes('text-body2')
        ui.label(_('A second opinion complements the care of your own doctor. Please discuss the report with them.')) \
            .classes('text-body2')

    with ui.card().classes(CARD_CLASSES):
        ui.label(_('Your privacy')).classes('text-h6')
        for line in (
                _('Your images and reports are seen only by you, the practice\'s radiologists while your case '
                  'waits for one of them, the radiologist who takes it, and the practice\'s administrators.'),
                _('Every time someone opens your examination or report, we record who it was and when.'),
                _('The app on your phone keeps no copy of your examinations, images or reports for offline use.'),
                _('In your profile you can download all your data, or delete your account.')):
            with ui.row().classes('no-wrap items-start gap-2'):
                ui.icon('lock', size='1.1rem').classes('text-primary q-mt-xs')
                ui.label(line).classes('text-body2 min-w-0')
