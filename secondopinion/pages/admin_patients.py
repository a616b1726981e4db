"""The Patients tab of the admin panel: one list of patient accounts, each row with its details and actions."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

from nicegui import ui

from ..i18n import _, format_date, ngettext
from ..services import accounts
from ..services import admin as admin_service
from ..services.actors import Actor
from .confirm import ConfirmDialog
from .badges import badge
from .layout import format_time, notify_error

PAGE_SIZE = 25


def _matches(patient: admin_service.PatientRow, search: str) -> bool:
    needle = search.strip().lower()
    return not needle or needle in patient.name.lower() or needle in patient.email.lower()


def patients_panel(actor: Actor) -> None:
    """List the patients newest first, 25 a page, with a search by name or email and a deactivate button."""
    state = {'page': 1}
    search = ui.input(_('Search by name or email')).props('clearable dense').classes('w-full max-w-md') \
        .mark('patient-search')

    @ui.refreshable
    def patient_list() -> None:
        patients = [patient for patient in admin_service.list_patients(actor=actor)
                    if _matches(patient, search.value or '')]
        if not patients:
            ui.label(_('No patients match.') if search.value else _('No patients yet.')).mark('patients-empty')
            return
        pages = (len(patients) + PAGE_SIZE - 1) // PAGE_SIZE
        state['page'] = min(state['page'], pages)
        first = (state['page'] - 1) * PAGE_SIZE
        with ui.column().classes('w-full gap-2').mark('patient-list'):
            for patient in patients[first:first + PAGE_SIZE]:
                _patient_row(patient, toggle)
        if pages > 1:
            ui.pagination(1, pages, direction_links=True, value=state['page'],
                          on_change=lambda event: go_to(event.value)).mark('patients-pages')
        ui.label(ngettext('{count} patient', '{count} patients', len(patients))).classes('text-caption') \
            .mark('patients-count')

    def go_to(page: int) -> None:
        if page != state['page']:
            state['page'] = page
            patient_list.refresh()

    def set_active(user_id: int, active: bool) -> None:
        try:
            accounts.set_user_active(actor=actor, user_id=user_id, active=active)
        except Exception as error:  # noqa: BLE001 (domain errors shown, others logged by notify_error)
            notify_error(error)
        patient_list.refresh()

    def toggle(patient: admin_service.PatientRow) -> None:
        """Reactivate at once, but ask before a deactivation, which signs the patient out."""
        if not patient.is_active:
            set_active(patient.user_id, True)
            return
        confirm.ask(title=_('Deactivate the account of {name}?', name=patient.name),
                    lines=[_('{name} ({email}) is signed out at once on every device and cannot sign in while the '
                             'account is deactivated.', name=patient.name, email=patient.email),
                           _('The examinations and reports of the account stay as they are.'),
                           _('You can reactivate the account here at any time.')],
                    action=_('Deactivate'), on_confirm=lambda: set_active(patient.user_id, False))

    def search_changed() -> None:
        state['page'] = 1
        patient_list.refresh()

    search.on_value_change(search_changed)
    confirm = ConfirmDialog('patient-confirm')
    with ui.column().classes('w-full gap-2').mark('patients-panel'):
        patient_list()


def _patient_row(patient: admin_service.PatientRow, toggle: Callable[[admin_service.PatientRow], None]) -> None:
    state = 'active' if patient.is_active else 'deactivated'
    with ui.card().classes('w-full q-py-sm').mark(f'patient-{patient.email}'):
        with ui.row().classes('w-full items-center justify-between no-wrap'):
            with ui.column().classes('gap-0 min-w-0'):
                with ui.row().classes('items-center gap-2'):
                    ui.label(f'{patient.name} ({patient.email})').classes('text-subtitle1 break-all')
                    badge(_('active') if patient.is_active else _('deactivated'),
                          'done' if state == 'active' else 'neutral').mark(f'patient-state-{patient.email}')
                    if not patient.email_verified:
                        badge(_('email not confirmed'), 'warning')
                details = [_('born {date}', date=format_date(date.fromisoformat(patient.date_of_birth))), patient.phone,
                           ngettext('{count} examination', '{count} examinations', patient.examinations),
                           _('registered {time}', time=format_time(patient.registered_at))]
                ui.label(', '.join(detail for detail in details if detail)).classes('text-caption') \
                    .mark(f'patient-details-{patient.email}')
            ui.button(_('Deactivate') if patient.is_active else _('Reactivate'), on_click=lambda: toggle(patient)) \
                .props('flat dense').classes('shrink-0').mark(f'toggle-patient-{patient.email}')
