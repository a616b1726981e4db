"""The admin panel: doctors, patients, examinations, incomes, notifications and the audit log."""

from __future__ import annotations

from nicegui import ui

from ..i18n import error_message
from ..models import Role
from ..models.base import utcnow
from ..services import account_lifecycle, accounts, examinations, notifications
from ..services import admin as admin_service
from ..services.actors import Actor
from ..services.errors import DomainError
from ..services.payments import format_money
from .admin_audit import audit_panel
from .admin_dicom import dicom_panel, examination_tools
from .admin_incomes import incomes_panel
from .admin_patients import patients_panel
from .badges import STATUS_CELL_SLOT, badge, status_cells
from .confirm import ConfirmDialog
from .layout import format_time, format_waiting, frame, notify_error, plural, require_actor, show_form_error
from .two_step import admin_reset_box


TEMPLATE_LABELS = {'report_ready': 'Report ready', 'payment_received': 'Payment received',
                   'case_accepted': 'Case accepted', 'refund': 'Refund', 'welcome': 'Welcome',
                   'report_amended': 'Report addendum', 'verify_email': 'Email confirmation',
                   'password_reset': 'Password reset', 'password_changed': 'Password changed',
                   'doctor_invite': 'Doctor invitation', 'account_deleted': 'Account deleted'}
STATE_TONES = {'active': 'done', 'invited': 'warning', 'deactivated': 'neutral'}
NOTIFICATION_TONES = {'sent': 'done', 'failed': 'danger'}


def register() -> None:
    ui.page('/admin')(admin_page)


def _table(columns: list[tuple[str, str]], rows: list[dict], row_key: str, marker: str) -> ui.table:
    return ui.table(columns=[{'name': name, 'label': label, 'field': name, 'align': 'left', 'sortable': True}
                             for name, label in columns],
                    rows=rows, row_key=row_key, pagination=25).props('flat dense wrap-cells') \
        .classes('w-full').mark(marker)


def admin_page() -> None:
    actor = require_actor(Role.ADMIN)
    if actor is None:
        return
    with frame('Admin panel', actor):
        ui.label('Admin panel').classes('text-h5')
        with ui.tabs().classes('w-full') as tabs:
            doctors_tab = ui.tab('Doctors')
            patients_tab = ui.tab('Patients')
            exams_tab = ui.tab('Examinations')
            incomes_tab = ui.tab('Incomes')
            outbox_tab = ui.tab('Notifications')
            audit_tab = ui.tab('Audit log')
            two_step_tab = ui.tab('Two-step sign-in')
            dicom_tab = ui.tab('DICOM')
        with ui.tab_panels(tabs, value=doctors_tab).classes('w-full'):
            with ui.tab_panel(doctors_tab):
                _doctors_panel(actor)
            with ui.tab_panel(patients_tab):
                patients_panel(actor)
            with ui.tab_panel(exams_tab):
                _examinations_panel(actor)
            with ui.tab_panel(incomes_tab):
                incomes_panel(actor)
            with ui.tab_panel(outbox_tab):
                _notifications_panel(actor)
            with ui.tab_panel(two_step_tab):
                admin_reset_box(actor)
            with ui.tab_panel(audit_tab):
                audit_panel(actor)
            with ui.tab_panel(dicom_tab):
                dicom_panel(actor)


def _doctors_panel(actor: Actor) -> None:
    with ui.expansion('Create a doctor account', icon='person_add').classes('w-full').mark('create-doctor'):
        name = ui.input('Full name').classes('w-full').mark('doctor-name')
        email = ui.input('Email').classes('w-full').mark('doctor-email')
        license_number = ui.input('License number').classes('w-full').mark('doctor-license')
        specialty = ui.input('Specialty', value='Radiology').classes('w-full').mark('doctor-specialty')
        ui.label('The doctor gets an email with a link to choose a password. The link works for 7 days.') \
            .classes('text-caption')
        message = ui.label('').classes('text-negative').mark('create-doctor-error')
        fields = {'name': name, 'email': email, 'license_number': license_number, 'specialty': specialty}

        def create() -> None:
            message.text = ''
            for field in fields.values():
                field.props(remove='error error-message')
            try:
                accounts.create_doctor(actor=actor, full_name=name.value or '', email=email.value or '',
                                       license_number=license_number.value or '', specialty=specialty.value or '')
            except DomainError as error:
                show_form_error(message, fields, error)
                return
            except Exception as error:  # noqa: BLE001 (logged and shown generically by notify_error)
                notify_error(error)
                return
            ui.notify(f'Doctor account for {email.value} created. We sent the invitation to that address.',
                      type='positive', position='top')
            for field in (name, email, license_number):
                field.value = ''
            specialty.value = 'Radiology'
            doctor_list.refresh()

        ui.button('Create doctor', on_click=create).mark('create-doctor-button')

    @ui.refreshable
    def doctor_list() -> None:
        for doctor in admin_service.list_doctors(actor=actor):
            with ui.card().classes('w-full').mark(f'doctor-{doctor.email}'):
                with ui.row().classes('w-full items-center justify-between'):
                    with ui.column().classes('gap-0'):
                        with ui.row().classes('items-center gap-2'):
                            ui.label(f'{doctor.name} ({doctor.email})').classes('text-subtitle1')
                            badge(doctor.state, STATE_TONES[doctor.state]).mark(f'doctor-state-{doctor.email}')
                        ui.label(f'License {doctor.license_number}, {doctor.specialty}, '
                                 f'{plural(doctor.cases, "case")}').classes('text-caption')

                    if doctor.state == 'invited':
                        def resend(doctor_id: int = doctor.id, email: str = doctor.email) -> None:
                            try:
                                account_lifecycle.resend_invite(actor=actor, doctor_id=doctor_id)
                            except Exception as error:  # noqa: BLE001
                                notify_error(error)
                                return
                            ui.notify(f'We sent a new invitation to {email}. The earlier link no longer works.',
                                      type='positive', position='top')

                        ui.button('Send the invitation again', on_click=resend).props('flat dense') \
                            .mark(f'resend-invite-{doctor.email}')

                    ui.button('Deactivate' if doctor.is_active else 'Reactivate',
                              on_click=lambda row=doctor: toggle(row)) \
                        .props('flat dense').mark(f'toggle-doctor-{doctor.email}')

    def set_active(doctor_id: int, active: bool) -> None:
        try:
            accounts.set_doctor_active(actor=actor, doctor_id=doctor_id, active=active)
        except Exception as error:  # noqa: BLE001
            notify_error(error)
        doctor_list.refresh()

    def toggle(doctor: admin_service.DoctorRow) -> None:
        """Reactivate at once, but ask before a deactivation, which signs the doctor out."""
        if not doctor.is_active:
            set_active(doctor.id, True)
            return
        confirm.ask(title=f'Deactivate the account of {doctor.name}?',
                    lines=[(f'{doctor.name} ({doctor.email}) is signed out at once on every device and cannot '
                            'sign in or accept examinations while the account is deactivated.'),
                           'Examinations that the doctor has accepted stay assigned to them.',
                           'You can reactivate the account here at any time.'],
                    action='Deactivate', on_confirm=lambda: set_active(doctor.id, False))

    confirm = ConfirmDialog('doctor-confirm')
    doctor_list()


def _examinations_panel(actor: Actor) -> None:
    _overdue_cases(actor)
    exams = examinations.list_all(actor=actor)
    counts: dict[str, int] = {}
    for exam in exams:
        counts[exam.status_label] = counts.get(exam.status_label, 0) + 1
    ui.label(', '.join(f'{label}: {count}' for label, count in sorted(counts.items())) or 'No examinations yet.') \
        .classes('text-body2')
    rows = [{'id': exam.id, 'short_id': exam.id[:8], 'patient': exam.patient_name,
             'what': f'{exam.modality} {exam.body_part}', **status_cells(exam.status),
             'doctor': exam.doctor_name or '', 'price': format_money(exam.price_cents, exam.currency),
             'created': format_time(exam.created_at)} for exam in exams]
    table = _table([('short_id', 'Id'), ('patient', 'Patient'), ('what', 'Examination'), ('status', 'Status'),
                    ('doctor', 'Radiologist'), ('price', 'Price'), ('created', 'Created')],
                   rows, 'id', 'exams-table')
    table.add_slot('body-cell-status', STATUS_CELL_SLOT)
    table.on('rowClick', lambda event: ui.navigate.to(f'/exams/{event.args[1]["id"]}'))
    examination_tools(actor, exams)


def _overdue_cases(actor: Actor) -> None:
    """List the paid cases without a report past their promised time, or a line stating that there are none."""
    overdue = examinations.list_overdue(actor=actor)
    with ui.card().classes('w-full q-mb-md').mark('overdue'):
        ui.label('Past their promised report time').classes('text-h6')
        if not overdue:
            ui.label('No case is past its promise.').classes('text-body2 text-grey-8')
            return
        now = utcnow()
        for exam in overdue:
            with ui.row().classes('w-full items-center gap-2'):
                ui.icon('schedule', color='negative')
                ui.link(f'{exam.id[:8]} {exam.modality} {exam.body_part}', f'/exams/{exam.id}')
                ui.label(f'{exam.status_label}, {"urgent" if exam.urgency == "urgent" else "routine"}, '
                         f'promised {format_time(exam.due_at)}, overdue by {format_waiting(exam.due_at, now)}'
                         + (f', {exam.doctor_name}' if exam.doctor_name else '')).classes('text-body2')


def _notifications_panel(actor: Actor) -> None:
    @ui.refreshable
    def outbox() -> None:
        try:
            rows = notifications.list_notifications(actor=actor)
        except DomainError as error:
            ui.label(error_message(error)).classes('text-negative')
            return
        if not rows:
            ui.label('No notifications yet.')
        for row in rows:
            with ui.row().classes('w-full items-center gap-2').mark(f'notification-{row.id}'):
                badge(row.status, NOTIFICATION_TONES.get(row.status, 'waiting'))
                ui.icon('sms' if row.channel == 'sms' else 'mail').props(f'aria-label="{row.channel}"')
                ui.label(f'{TEMPLATE_LABELS.get(row.template, row.template)} to {row.recipient}, '
                         f'{plural(row.attempts, "attempt")}') \
                    .classes('text-body2')
                if row.last_error:
                    ui.label(row.last_error[:120]).classes('text-caption text-negative')
                if row.status == 'failed':
                    def retry(notification_id: int = row.id) -> None:
                        try:
                            notifications.retry_notification(actor=actor, notification_id=notification_id)
                        except Exception as error:  # noqa: BLE001
                            notify_error(error)
                        outbox.refresh()
                    ui.button('Retry', on_click=retry).props('flat dense').mark(f'retry-{row.id}')

    ui.button('Refresh', icon='refresh', on_click=lambda: outbox.refresh()).props('flat dense')
    outbox()
    files = notifications.outbox_files(actor=actor)
    if files:
        ui.label('Emails written to the outbox folder (no SMTP server configured)').classes('text-subtitle1 q-mt-md')
        for path in files[:50]:
            with ui.expansion(path.name, icon='mail').classes('w-full'):
                ui.code(notifications.read_eml(actor=actor, name=path.name)[:20000], language='text').classes('w-full')
