"""The admin panel: doctors, patients, examinations, incomes, notifications and the audit log."""

from __future__ import annotations

from nicegui import ui

from ..i18n import N_, _, error_message, ngettext
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
from .layout import format_time, format_waiting, frame, notify_error, require_actor, show_form_error
from .two_step import admin_reset_box


TEMPLATE_LABELS = {'report_ready': N_('Report ready'), 'payment_received': N_('Payment received'),
                   'case_accepted': N_('Case accepted'), 'refund': N_('Refund'), 'welcome': N_('Welcome'),
                   'report_amended': N_('Report addendum'), 'verify_email': N_('Email confirmation'),
                   'password_reset': N_('Password reset'), 'password_changed': N_('Password changed'),
                   'doctor_invite': N_('Doctor invitation'), 'account_deleted': N_('Account deleted')}
STATE_TONES = {'active': 'done', 'invited': 'warning', 'deactivated': 'neutral'}
# Account and notification states as the badges show them; unknown states are shown as stored.
STATE_LABELS = {'active': N_('active'), 'invited': N_('invited'), 'deactivated': N_('deactivated')}
NOTIFICATION_TONES = {'sent': 'done', 'failed': 'danger'}
NOTIFICATION_LABELS = {'queued': N_('queued'), 'sending': N_('sending'), 'sent': N_('sent'), 'failed': N_('failed')}


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
    with frame(_('Admin panel'), actor):
        ui.label(_('Admin panel')).classes('text-h5')
        with ui.tabs().classes('w-full') as tabs:
            doctors_tab = ui.tab(_('Doctors'))
            patients_tab = ui.tab(_('Patients'))
            exams_tab = ui.tab(_('Examinations'))
            incomes_tab = ui.tab(_('Incomes'))
            outbox_tab = ui.tab(_('Notifications'))
            audit_tab = ui.tab(_('Audit log'))
            two_step_tab = ui.tab(_('Two-step sign-in'))
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
    with ui.expansion(_('Create a doctor account'), icon='person_add').classes('w-full').mark('create-doctor'):
        name = ui.input(_('Full name')).classes('w-full').mark('doctor-name')
        email = ui.input(_('Email')).classes('w-full').mark('doctor-email')
        license_number = ui.input(_('License number')).classes('w-full').mark('doctor-license')
        specialty = ui.input(_('Specialty'), value=_('Radiology')).classes('w-full').mark('doctor-specialty')
        ui.label(_('The doctor gets an email with a link to choose a password. The link works for 7 days.')) \
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
            ui.notify(_('Doctor account for {email} created. We sent the invitation to that address.',
                        email=email.value), type='positive', position='top')
            for field in (name, email, license_number):
                field.value = ''
            specialty.value = _('Radiology')
            doctor_list.refresh()

        ui.button(_('Create doctor'), on_click=create).mark('create-doctor-button')

    @ui.refreshable
    def doctor_list() -> None:
        for doctor in admin_service.list_doctors(actor=actor):
            with ui.card().classes('w-full').mark(f'doctor-{doctor.email}'):
                with ui.row().classes('w-full items-center justify-between'):
                    with ui.column().classes('gap-0'):
                        with ui.row().classes('items-center gap-2'):
                            ui.label(f'{doctor.name} ({doctor.email})').classes('text-subtitle1')
                            badge(_(STATE_LABELS[doctor.state]), STATE_TONES[doctor.state]) \
                                .mark(f'doctor-state-{doctor.email}')
                        ui.label(_('License {license}, {specialty}, {cases}', license=doctor.license_number,
                                   specialty=doctor.specialty,
                                   cases=ngettext('{count} case', '{count} cases', doctor.cases))) \
                            .classes('text-caption')

                    if doctor.state == 'invited':
                        def resend(doctor_id: int = doctor.id, email: str = doctor.email) -> None:
                            try:
                                account_lifecycle.resend_invite(actor=actor, doctor_id=doctor_id)
                            except Exception as error:  # noqa: BLE001
                                notify_error(error)
                                return
                            ui.notify(_('We sent a new invitation to {email}. The earlier link no longer works.',
                                        email=email), type='positive', position='top')

                        ui.button(_('Send the invitation again'), on_click=resend).props('flat dense') \
                            .mark(f'resend-invite-{doctor.email}')

                    ui.button(_('Deactivate') if doctor.is_active else _('Reactivate'),
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
        confirm.ask(title=_('Deactivate the account of {name}?', name=doctor.name),
                    lines=[_('{name} ({email}) is signed out at once on every device and cannot sign in or accept '
                             'examinations while the account is deactivated.', name=doctor.name, email=doctor.email),
                           _('Examinations that the doctor has accepted stay assigned to them.'),
                           _('You can reactivate the account here at any time.')],
                    action=_('Deactivate'), on_confirm=lambda: set_active(doctor.id, False))

    confirm = ConfirmDialog('doctor-confirm')
    doctor_list()


def _examinations_panel(actor: Actor) -> None:
    _overdue_cases(actor)
    exams = examinations.list_all(actor=actor)
    counts: dict[str, int] = {}
    for exam in exams:
        label = _(exam.status_label)
        counts[label] = counts.get(label, 0) + 1
    summary = ', '.join(_('{status}: {count}', status=label, count=count) for label, count in sorted(counts.items()))
    ui.label(summary or _('No examinations yet.')).classes('text-body2')
    rows = [{'id': exam.id, 'short_id': exam.id[:8], 'patient': exam.patient_name,
             'what': f'{exam.modality} {exam.body_part}', **status_cells(exam.status),
             'doctor': exam.doctor_name or '', 'price': format_money(exam.price_cents, exam.currency),
             'created': format_time(exam.created_at)} for exam in exams]
    table = _table([('short_id', _('Id')), ('patient', _('Patient')), ('what', _('Examination')),
                    ('status', _('Status')), ('doctor', _('Radiologist')), ('price', _('Price')),
                    ('created', _('Created'))],
                   rows, 'id', 'exams-table')
    table.add_slot('body-cell-status', STATUS_CELL_SLOT)
    table.on('rowClick', lambda event: ui.navigate.to(f'/exams/{event.args[1]["id"]}'))
    examination_tools(actor, exams)


def _overdue_cases(actor: Actor) -> None:
    """List the paid cases without a report past their promised time, or a line stating that there are none."""
    overdue = examinations.list_overdue(actor=actor)
    with ui.card().classes('w-full q-mb-md').mark('overdue'):
        ui.label(_('Past their promised report time')).classes('text-h6')
        if not overdue:
            ui.label(_('No case is past its promise.')).classes('text-body2 text-grey-8')
            return
        now = utcnow()
        for exam in overdue:
            with ui.row().classes('w-full items-center gap-2'):
                ui.icon('schedule', color='negative')
                ui.link(f'{exam.id[:8]} {exam.modality} {exam.body_part}', f'/exams/{exam.id}')
                text = _('{status}, {urgency}, promised {time}, overdue by {delay}', status=_(exam.status_label),
                         urgency=_('urgent') if exam.urgency == 'urgent' else _('routine'),
                         time=format_time(exam.due_at), delay=format_waiting(exam.due_at, now))
                if exam.doctor_name:
                    text = f'{text}, {exam.doctor_name}'
                ui.label(text).classes('text-body2')


def _notifications_panel(actor: Actor) -> None:
    @ui.refreshable
    def outbox() -> None:
        try:
            rows = notifications.list_notifications(actor=actor)
        except DomainError as error:
            ui.label(error_message(error)).classes('text-negative')
            return
        if not rows:
            ui.label(_('No notifications yet.'))
        for row in rows:
            with ui.row().classes('w-full items-center gap-2').mark(f'notification-{row.id}'):
                status = NOTIFICATION_LABELS.get(row.status)
                badge(_(status) if status else row.status, NOTIFICATION_TONES.get(row.status, 'waiting'))
                ui.icon('sms' if row.channel == 'sms' else 'mail').props(f'aria-label="{row.channel}"')
                template = TEMPLATE_LABELS.get(row.template)
                ui.label(_('{template} to {recipient}, {attempts}',
                           template=_(template) if template else row.template, recipient=row.recipient,
                           attempts=ngettext('{count} attempt', '{count} attempts', row.attempts))) \
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
                    ui.button(_('Retry'), on_click=retry).props('flat dense').mark(f'retry-{row.id}')

    ui.button(_('Refresh'), icon='refresh', on_click=lambda: outbox.refresh()).props('flat dense')
    outbox()
    files = notifications.outbox_files(actor=actor)
    if files:
        ui.label(_('Emails written to the outbox folder (no SMTP server configured)')).classes('text-subtitle1 q-mt-md')
        for path in files[:50]:
            with ui.expansion(path.name, icon='mail').classes('w-full'):
                ui.code(notifications.read_eml(actor=actor, name=path.name)[:20000], language='text').classes('w-full')
