"""Doctor pages: the doctor's cases and the review page. The live board is in `board.py`."""

from __future__ import annotations

import logging

from nicegui import ui

from ..models import ExamStatus, Role
from ..services import examinations, ledger, questions, reports
from ..services.errors import NotFoundError
from ..services.payments import format_money
from .images import SEX_WORDS, images_summary
from .badges import badge, status_badge
from .layout import format_time, frame, not_found_page, plural, require_actor
from .questions import question_thread
from .report_editor import final_report, report_editor

logger = logging.getLogger(__name__)


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
                    with ui.row().classes('items-center gap-1'):
                        if open_questions.get(exam.id):
                            badge(f'{plural(open_questions[exam.id], "question")} to answer', 'warning') \
                                .mark(f'open-questions-{exam.id}')
                        status_badge(exam.status)
                ui.label(f'Accepted {format_time(exam.accepted_at)}').classes('text-caption')
        ui.label('Earnings by month (UTC)').classes('text-h6 q-mt-md')
        if not earnings:
            ui.label('No earnings yet: they are recorded when you finalize a report.')
        for month, cents, currency in earnings:
            ui.label(f'{month}: {format_money(cents, currency)}').mark(f'earning-{month}')


def review_page(examination_id: str) -> None:
    actor = require_actor(Role.DOCTOR)
    if actor is None:
        return
    try:
        exam = examinations.view_exam(actor=actor, examination_id=examination_id, page='review', own_case=True)
    except NotFoundError:
        not_found_page(actor, 'Examination')
        return
    report = reports.view_report(actor=actor, examination_id=examination_id, page='review')

    with frame('Review', actor):
        with ui.row().classes('w-full items-center justify-between'):
            ui.label(f'{exam.modality} {exam.body_part}').classes('text-h5')
            status_badge(exam.status).mark('status')
        with ui.card().classes('w-full'):
            ui.label('Patient and request').classes('text-h6')
            # In de-identified review the view has a pseudonym, age and sex instead of name and date of birth.
            for label, value in (('Patient', exam.patient_name), ('Date of birth', exam.patient_birth_date),
                                 ('Age', exam.patient_age), ('Sex', SEX_WORDS.get(exam.patient_sex, exam.patient_sex)),
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
            images_summary(actor, examination_id, can_edit=False,
                           links=[url for _link_id, url, _note in exam.links])

        with ui.card().classes('w-full'):
            ui.label('Report').classes('text-h6')
            if exam.status == ExamStatus.UNDER_REVIEW:
                report_editor(actor, exam, report,
                              reports.has_first_report(actor=actor, examination_id=examination_id))
            else:
                final_report(actor, examination_id, report,
                             can_amend=exam.status in {ExamStatus.REPORTED, ExamStatus.COMPLETED},
                             deidentified=exam.deidentified)
        if exam.status in {ExamStatus.REPORTED, ExamStatus.COMPLETED}:
            question_thread(actor, examination_id)
