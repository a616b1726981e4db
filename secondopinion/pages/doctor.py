"""Doctor pages: the live board of pending examinations, the doctor's cases and the review page."""

from __future__ import annotations

import logging
from datetime import datetime

from nicegui import context, ui

from ..models import ExamStatus, Role
from ..models.base import utcnow
from ..services import events, examinations, ledger, reports
from ..services.errors import ConflictError, DomainError, NotFoundError
from ..services.payments import format_money
from .images import images_summary
from .layout import format_time, frame, notify_error, plural, require_actor, show_not_found, status_badge
from .report_editor import final_report, report_editor

logger = logging.getLogger(__name__)

BOARD_PAGE_SIZE = 50
# How often an open board checks whether an examination changed; changes reach it within this delay.
BOARD_POLL_SECONDS = 0.3


def register() -> None:
    ui.page('/doctor')(board_page)
    ui.page('/doctor/cases')(my_cases_page)
    ui.page('/doctor/cases/{examination_id}')(review_page)


def format_waiting(since: datetime | None, now: datetime) -> str:
    if since is None:
        return '-'
    minutes = max(0, int((now - since).total_seconds() // 60))
    if minutes < 60:
        return f'{minutes} min'
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f'{hours} h {minutes} min'
    return f'{hours // 24} days'


def board_page() -> None:
    actor = require_actor(Role.DOCTOR)
    if actor is None:
        return
    state = {'dirty': False}

    with frame('Pending examinations', actor):
        ui.label('Pending examinations').classes('text-h5')
        ui.label('Paid cases waiting for a radiologist, urgent first, then the longest waiting.') \
            .classes('text-body2 text-grey-8')

        @ui.refreshable
        def board() -> None:
            try:
                pending, total = examinations.list_pending(actor=actor, limit=BOARD_PAGE_SIZE)
            except DomainError as error:
                ui.label(str(error)).classes('text-negative')
                return
            if not pending:
                with ui.card().classes('w-full items-center q-pa-lg').mark('board-empty'):
                    ui.icon('inbox', size='3rem').classes('text-grey-6')
                    ui.label('No examinations are waiting. New paid cases appear here by themselves.')
                return
            ui.label(f'{total} waiting' + (f', showing the first {BOARD_PAGE_SIZE}' if total > BOARD_PAGE_SIZE
                                           else '')).classes('text-caption').mark('board-count')
            now = utcnow()
            for exam in pending:
                with ui.card().classes('w-full').mark(f'pending-{exam.id}'):
                    with ui.row().classes('w-full items-center justify-between'):
                        with ui.column().classes('gap-0'):
                            with ui.row().classes('items-center gap-2'):
                                if exam.urgency == 'urgent':
                                    ui.badge('URGENT', color='red-7')
                                ui.label(f'{exam.modality} {exam.body_part}').classes(
                                    'text-subtitle1 text-weight-medium')
                            ui.label(exam.clinical_question[:200]).classes('text-body2 text-grey-8')
                            ui.label(f'{plural(exam.image_count, "image")}, '
                                     f'waiting {format_waiting(exam.paid_at, now)}') \
                                .classes('text-caption')
                        ui.button('Accept', icon='assignment_ind',
                                  on_click=lambda exam_id=exam.id: accept(exam_id)).mark(f'accept-{exam.id}')

        def accept(examination_id: str) -> None:
            try:
                examinations.accept(actor=actor, examination_id=examination_id)
            except (ConflictError, NotFoundError) as error:
                ui.notify(str(error), type='warning', position='top')
                board.refresh()
                return
            except Exception as error:  # noqa: BLE001 (domain errors shown, others logged)
                notify_error(error)
                return
            ui.navigate.to(f'/doctor/cases/{examination_id}')

        board()

    def on_change(_event: events.ExamChanged) -> None:
        state['dirty'] = True

    def refresh_if_changed() -> None:
        if state['dirty']:
            state['dirty'] = False
            board.refresh()

    unsubscribe = events.subscribe(on_change)
    ui.timer(BOARD_POLL_SECONDS, refresh_if_changed)
    # Keeps the waiting times current. Not at once: a refresh replaces the buttons a doctor may be clicking.
    ui.timer(60, board.refresh, immediate=False)
    context.client.on_delete(unsubscribe)


def my_cases_page() -> None:
    actor = require_actor(Role.DOCTOR)
    if actor is None:
        return
    cases = examinations.list_for_doctor(actor=actor)
    earnings = ledger.doctor_earnings(actor=actor)
    with frame('My cases', actor):
        ui.label('My cases').classes('text-h5')
        if not cases:
            ui.label('You have no cases yet. Accept one from the pending examinations.').mark('no-cases')
        for exam in cases:
            with ui.card().classes('w-full cursor-pointer').on(
                    'click', lambda exam_id=exam.id: ui.navigate.to(f'/doctor/cases/{exam_id}')) \
                    .mark(f'case-{exam.id}'):
                with ui.row().classes('w-full items-center justify-between'):
                    ui.label(f'{exam.modality} {exam.body_part}: {exam.patient_name}').classes('text-subtitle1')
                    status_badge(exam.status, exam.status_label)
                ui.label(f'Accepted {format_time(exam.accepted_at)}').classes('text-caption')
        ui.label('Earnings').classes('text-h6 q-mt-md')
        if not earnings:
            ui.label('No earnings yet: they are recorded when you finalize a report.')
        for month, cents, currency in earnings:
            ui.label(f'{month}: {format_money(cents, currency)}').mark(f'earning-{month}')


def review_page(examination_id: str) -> None:
    actor = require_actor(Role.DOCTOR)
    if actor is None:
        return
    try:
        exam = examinations.get_exam(actor=actor, examination_id=examination_id)
    except NotFoundError:
        exam = None
    if exam is None or exam.doctor_id != actor.doctor_id:
        with frame('Not found', actor):
            show_not_found('Examination')
        return
    report = reports.get_report(actor=actor, examination_id=examination_id)

    with frame('Review', actor):
        with ui.row().classes('w-full items-center justify-between'):
            ui.label(f'{exam.modality} {exam.body_part}').classes('text-h5')
            status_badge(exam.status, exam.status_label).mark('status')
        with ui.card().classes('w-full'):
            ui.label('Patient and request').classes('text-h6')
            for label, value in (('Patient', exam.patient_name), ('Date of birth', exam.patient_birth_date),
                                 ('Urgency', exam.urgency.capitalize()), ('Question', exam.clinical_question),
                                 ('History', exam.history), ('First report', exam.prior_report_text)):
                if value:
                    with ui.row().classes('w-full no-wrap gap-2'):
                        ui.label(label).classes('text-grey-7 w-28 shrink-0')
                        ui.label(value).classes('whitespace-pre-wrap break-words')
        with ui.card().classes('w-full'):
            with ui.row().classes('w-full items-center justify-between'):
                ui.label('Images').classes('text-h6')
                if exam.image_count:
                    ui.button('Open viewer', icon='visibility',
                              on_click=lambda: ui.navigate.to(f'/doctor/cases/{examination_id}/viewer')) \
                        .mark('open-viewer')
                    ui.button('Download all images (.zip)', icon='download',
                              on_click=lambda: ui.navigate.to(f'/api/exams/{examination_id}/images.zip',
                                                              new_tab=True)).props('outline').mark('download-zip')
            images_summary(actor, examination_id, can_edit=False)
            for _link_id, url, _note in exam.links:
                with ui.row().classes('items-center gap-2'):
                    ui.icon('link')
                    ui.link(url, url, new_tab=True).classes('break-all')

        with ui.card().classes('w-full'):
            ui.label('Report').classes('text-h6')
            if exam.status == ExamStatus.UNDER_REVIEW:
                report_editor(actor, exam, report,
                              reports.has_first_report(actor=actor, examination_id=examination_id))
            else:
                final_report(actor, examination_id, report,
                             can_amend=exam.status in {ExamStatus.REPORTED, ExamStatus.COMPLETED})
