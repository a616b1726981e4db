"""Doctor pages: the doctor's cases and the review page. The live board is in `board.py`."""

from __future__ import annotations

import logging

from nicegui import ui

from ..models import ExamStatus, Role
from ..services import examinations, ledger, reports
from ..services.errors import NotFoundError
from ..services.payments import format_money
from .images import images_summary
from .layout import format_time, frame, notify_error, require_actor, show_not_found, status_badge

logger = logging.getLogger(__name__)


def register() -> None:
    ui.page('/doctor/cases')(my_cases_page)
    ui.page('/doctor/cases/{examination_id}')(review_page)


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


def _show_final_report(examination_id: str, report: reports.ReportView | None) -> None:
    if report is None or not report.is_final:
        ui.label('No report was written for this case.')
        return
    for title, text in (('Findings', report.findings), ('Impression', report.impression),
                        ('Recommendations', report.recommendations)):
        if text:
            ui.label(title).classes('text-subtitle1 text-weight-medium q-mt-sm')
            ui.label(text).classes('whitespace-pre-wrap').mark(f'final-{title.lower()}')
    ui.label(f'Finalized {format_time(report.finalized_at)}. SHA-256 of the PDF: {report.pdf_sha256}') \
        .classes('text-caption break-all').mark('finalized')
    ui.button('Download PDF report', icon='picture_as_pdf',
              on_click=lambda: ui.navigate.to(f'/api/exams/{examination_id}/report.pdf', new_tab=True)) \
        .props('outline')


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

        editable = exam.status == ExamStatus.UNDER_REVIEW
        with ui.card().classes('w-full'):
            ui.label('Report').classes('text-h6')
            if not editable:
                _show_final_report(examination_id, report)
                return
            findings = ui.textarea('Findings', value=report.findings if report else '').classes('w-full') \
                .props('autogrow').mark('findings')
            impression = ui.textarea('Impression', value=report.impression if report else '').classes('w-full') \
                .props('autogrow').mark('impression')
            recommendations = ui.textarea('Recommendations', value=report.recommendations if report else '') \
                .classes('w-full').props('autogrow').mark('recommendations')

            def values() -> dict[str, str]:
                return {'findings': findings.value or '', 'impression': impression.value or '',
                        'recommendations': recommendations.value or ''}

            def save_quietly() -> bool:
                try:
                    reports.save_draft(actor=actor, examination_id=examination_id, **values())
                except Exception as error:  # noqa: BLE001 (domain errors shown, others logged)
                    notify_error(error)
                    return False
                return True

            def save() -> None:
                if save_quietly():
                    ui.notify('Draft saved.', type='positive', position='top')

            # Each section is saved when it loses focus, so a lost connection costs at most one section's edit.
            for field in (findings, impression, recommendations):
                field.on('blur', save_quietly)

            def finalize() -> None:
                confirm.close()
                try:
                    reports.finalize(actor=actor, examination_id=examination_id, **values())
                except Exception as error:  # noqa: BLE001 (domain errors shown, others logged)
                    notify_error(error)
                    return
                ui.notify('Report finalized and sent to the patient.', type='positive', position='top')
                ui.navigate.reload()

            with ui.dialog() as confirm, ui.card():
                ui.label('Finalize and sign this report?').classes('text-h6')
                ui.label('The PDF is signed with your name and license number and sent to the patient. '
                         'It can no longer be changed afterwards.')
                with ui.row().classes('w-full justify-end'):
                    ui.button('Keep editing', on_click=confirm.close).props('flat')
                    ui.button('Finalize and sign', icon='verified', on_click=finalize).mark('confirm-finalize')

            def release() -> None:
                try:
                    examinations.release(actor=actor, examination_id=examination_id)
                except Exception as error:  # noqa: BLE001
                    notify_error(error)
                    return
                ui.notify('The case is back on the pending list.', position='top')
                ui.navigate.to('/doctor')

            with ui.row().classes('w-full justify-end gap-2'):
                ui.button('Release case', on_click=release).props('flat color=negative').mark('release')
                ui.button('Save draft', on_click=save).props('outline').mark('save-report')
                ui.button('Finalize report', icon='verified', on_click=confirm.open).mark('finalize')
