"""Doctor pages: the doctor's cases and the review page. The live board is in `board.py`."""

from __future__ import annotations

import logging

from nicegui import ui

from ..i18n import N_, _, ngettext
from ..models import ExamStatus, Role, Urgency
from ..services import examinations, ledger, questions, reports
from ..services.errors import NotFoundError
from ..services.payments import format_money
from .images import SEX_WORDS, images_summary
from .badges import badge, status_badge
from .layout import format_time, frame, not_found_page, require_actor
from .questions import question_thread
from .report_editor import final_report, report_editor

logger = logging.getLogger(__name__)

# Urgency value -> the word the review page shows, translated there.
URGENCY_WORDS = {Urgency.URGENT.value: N_('Urgent'), Urgency.ROUTINE.value: N_('Routine')}


def register() -> None:
    ui.page('/doctor/cases')(my_cases_page)
    ui.page('/doctor/cases/{examination_id}')(review_page)


def my_cases_page() -> None:
    actor = require_actor(Role.DOCTOR)
    if actor is None:
        return
    cases = examinations.list_for_doctor(actor=actor)
    open_questions = questions.open_question_counts(actor=actor)
    earnings = ledger.doctor_earnings(actor=actor)
    with frame(_('My cases'), actor):
        ui.label(_('My cases')).classes('text-h5')
        if not cases:
            ui.label(_('You have no cases yet. Accept one from the pending examinations.')).mark('no-cases')
        for exam in cases:
            with ui.card().classes('w-full cursor-pointer').on(
                    'click', lambda exam_id=exam.id: ui.navigate.to(f'/doctor/cases/{exam_id}')) \
                    .mark(f'case-{exam.id}'):
                with ui.row().classes('w-full items-center justify-between'):
                    ui.label(f'{exam.modality} {exam.body_part}: {exam.patient_name}').classes('text-subtitle1')
                    with ui.row().classes('items-center gap-1'):
                        if open_questions.get(exam.id):
                            badge(ngettext('{count} question to answer', '{count} questions to answer',
                                           open_questions[exam.id]), 'warning') \
                                .mark(f'open-questions-{exam.id}')
                        status_badge(exam.status)
                ui.label(_('Accepted {time}', time=format_time(exam.accepted_at))).classes('text-caption')
        ui.label(_('Earnings by month (UTC)')).classes('text-h6 q-mt-md')
        if not earnings:
            ui.label(_('No earnings yet: they are recorded when you finalize a report.'))
        for month, cents, currency in earnings:
            ui.label(f'{month}: {format_money(cents, currency)}').mark(f'earning-{month}')


def review_page(examination_id: str) -> None:
    actor = require_actor(Role.DOCTOR)
    if actor is None:
        return
    try:
        exam = examinations.view_exam(actor=actor, examination_id=examination_id, page='review', own_case=True)
    except NotFoundError:
        not_found_page(actor, N_('Examination'))
        return
    report = reports.view_report(actor=actor, examination_id=examination_id, page='review')

    with frame(_('Review'), actor):
        with ui.row().classes('w-full items-center justify-between'):
            ui.label(f'{exam.modality} {exam.body_part}').classes('text-h5')
            status_badge(exam.status).mark('status')
        with ui.card().classes('w-full'):
            ui.label(_('Patient and request')).classes('text-h6')
            # In de-identified review the view has a pseudonym, age and sex instead of name and date of birth.
            sex = _(SEX_WORDS[exam.patient_sex]) if exam.patient_sex in SEX_WORDS else exam.patient_sex
            urgency = _(URGENCY_WORDS[exam.urgency]) if exam.urgency in URGENCY_WORDS else exam.urgency.capitalize()
            for label, value in ((N_('Patient'), exam.patient_name), (N_('Date of birth'), exam.patient_birth_date),
                                 (N_('Age'), exam.patient_age), (N_('Sex'), sex),
                                 (N_('Urgency'), urgency), (N_('Question'), exam.clinical_question),
                                 (N_('History'), exam.history), (N_('First report'), exam.prior_report_text)):
                if value:
                    with ui.row().classes('w-full no-wrap gap-2'):
                        ui.label(_(label)).classes('text-grey-7 w-28 shrink-0')
                        ui.label(value).classes('whitespace-pre-wrap break-words')
        with ui.card().classes('w-full'):
            with ui.row().classes('w-full items-center justify-between'):
                ui.label(_('Images')).classes('text-h6')
                if exam.image_count:
                    ui.button(_('Open viewer'), icon='visibility',
                              on_click=lambda: ui.navigate.to(f'/doctor/cases/{examination_id}/viewer')) \
                        .mark('open-viewer')
                    ui.button(_('Download all images (.zip)'), icon='download',
                              on_click=lambda: ui.navigate.to(f'/api/exams/{examination_id}/images.zip',
                                                              new_tab=True)).props('outline').mark('download-zip')
            images_summary(actor, examination_id, can_edit=False,
                           links=[url for _link_id, url, _note in exam.links])

        with ui.card().classes('w-full'):
            ui.label(_('Report')).classes('text-h6')
            if exam.status == ExamStatus.UNDER_REVIEW:
                report_editor(actor, exam, report,
                              reports.has_first_report(actor=actor, examination_id=examination_id))
            else:
                final_report(actor, examination_id, report,
                             can_amend=exam.status in {ExamStatus.REPORTED, ExamStatus.COMPLETED},
                             deidentified=exam.deidentified)
        if exam.status in {ExamStatus.REPORTED, ExamStatus.COMPLETED}:
            question_thread(actor, examination_id)
