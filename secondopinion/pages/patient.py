"""Patient pages: the list of examinations, the request form, the status page and the test checkout."""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path

from nicegui import events, run, ui

from ..models import ExamStatus, Role
from ..services import examinations, payments, reports, sharing, studies
from ..services.actors import Actor
from ..services.errors import NotFoundError
from ..services.payments import format_money
from ..config import get_settings
from .account import payment_blocked_note
from .badges import status_badge
from .confirm import ConfirmDialog
from .images import describe_upload, images_summary
from .layout import format_time, frame, not_found_page, notify_error, require_actor
from .questions import question_thread
from .sharing import share_section
from .report_editor import final_report
from .study_uploader import StudyUploader

logger = logging.getLogger(__name__)


def register() -> None:
    ui.page('/exams')(exam_list_page)
    ui.page('/exams/new')(new_exam_page)
    ui.page('/exams/{examination_id}/edit')(edit_exam_page)
    ui.page('/exams/{examination_id}')(exam_page)
    ui.page('/checkout/test/{provider_ref}')(test_checkout_page)


def exam_list_page() -> None:
    actor = require_actor(Role.PATIENT)
    if actor is None:
        return
    exams = examinations.list_for_patient(actor=actor)
    with frame('My examinations', actor):
        with ui.row().classes('w-full items-center justify-between'):
            ui.label('My examinations').classes('text-h5')
            ui.button('New examination', icon='add', on_click=lambda: ui.navigate.to('/exams/new')) \
                .mark('new-exam')
        if not exams:
            with ui.card().classes('w-full items-center q-pa-lg'):
                ui.icon('folder_open', size='3rem').classes('text-grey-6')
                ui.label('You have no examinations yet.').classes('text-h6')
                ui.label('Start a new examination to upload your images and ask for a second opinion.')
            return
        for exam in exams:
            target = f'/exams/{exam.id}/edit' if exam.status == ExamStatus.DRAFT else f'/exams/{exam.id}'
            with ui.card().classes('w-full cursor-pointer').on('click', lambda t=target: ui.navigate.to(t)) \
                    .mark(f'exam-{exam.id}'):
                with ui.row().classes('w-full items-center justify-between'):
                    title = ' '.join(part for part in (exam.modality, exam.body_part) if part) or 'New examination'
                    ui.label(title).classes('text-subtitle1 text-weight-medium')
                    status_badge(exam.status)
                ui.label(f'Created {format_time(exam.created_at)}').classes('text-caption text-grey-7')


def new_exam_page() -> None:
    actor = require_actor(Role.PATIENT)
    if actor is None:
        return
    examination_id = examinations.open_new_draft(actor=actor)
    ui.navigate.to(f'/exams/{examination_id}/edit')


def _load(actor: Actor, examination_id: str, page: str) -> examinations.ExamView | None:
    """Return the examination (the service records the view), or show the framed not-found page and return None."""
    try:
        return examinations.view_exam(actor=actor, examination_id=examination_id, page=page)
    except NotFoundError:
        not_found_page(actor, 'Examination')
        return None


def edit_exam_page(examination_id: str) -> None:
    actor = require_actor(Role.PATIENT)
    if actor is None:
        return
    exam = _load(actor, examination_id, 'edit')
    if exam is None:
        return
    if exam.status != ExamStatus.DRAFT:
        ui.navigate.to(f'/exams/{examination_id}')
        return

    with frame('New examination', actor):
        ui.label('New examination').classes('text-h5')

        with ui.card().classes('w-full'):
            ui.label('1. Images').classes('text-h6')
            ui.label('Upload the DICOM files of your study: the files, the whole folder of the CD, or one .zip '
                     'of it. You can also give a link to images stored elsewhere.').classes('text-body2')

            @ui.refreshable
            def image_list() -> None:
                images_summary(actor, examination_id, can_edit=True, on_change=image_list.refresh)

            upload_status = ui.label('').classes('text-body2').mark('upload-status')

            def uploaded(summary: dict) -> None:
                upload_status.text = describe_upload(summary)
                upload_status.classes(replace='text-body2 text-positive')
                if _suggest_from_images(actor, examination_id, modality, body_part):
                    save()
                image_list.refresh()

            def upload_failed(message: str) -> None:
                # The message stays in the status line next to the upload; a toast would cover the page.
                upload_status.text = message
                upload_status.classes(replace='text-body2 text-negative')

            StudyUploader(examination_id, concurrency=get_settings().upload_concurrency,
                          on_uploaded=uploaded, on_failed=upload_failed).classes('w-full').mark('image-upload')
            image_list()

            with ui.row().classes('w-full items-end gap-2'):
                link_url = ui.input('Link to images', placeholder='https://... (a portal or cloud share)') \
                    .classes('grow').mark('link-url')

                def add_link() -> None:
                    try:
                        examinations.add_link(actor=actor, examination_id=examination_id, url=link_url.value or '')
                    except Exception as error:  # noqa: BLE001 (domain errors shown, others logged)
                        notify_error(error)
                        return
                    link_url.value = ''
                    links.refresh()

                ui.button('Add link', on_click=add_link).props('outline').mark('add-link')

            @ui.refreshable
            def links() -> None:
                current = examinations.get_exam(actor=actor, examination_id=examination_id)
                for link_id, url, _note in current.links:
                    with ui.row().classes('items-center gap-2'):
                        ui.icon('link')
                        ui.label(url).classes('break-all')

                        def remove(link_id: int = link_id) -> None:
                            try:
                                examinations.remove_link(actor=actor, examination_id=examination_id,
                                                         link_id=link_id)
                            except Exception as error:  # noqa: BLE001
                                notify_error(error)
                            links.refresh()

                        ui.button(icon='delete', on_click=remove).props('flat dense round aria-label="Remove link"')

            links()

        with ui.card().classes('w-full'):
            ui.label('2. Clinical details').classes('text-h6')
            modality = ui.select(examinations.MODALITIES, label='Type of examination', value=exam.modality or None) \
                .classes('w-full').mark('modality')
            body_part = ui.input('Body part', value=exam.body_part, placeholder='e.g. chest, left knee') \
                .classes('w-full').mark('body_part')
            question = ui.textarea('Your question for the radiologist', value=exam.clinical_question) \
                .classes('w-full').mark('clinical_question')
            history = ui.textarea('Relevant history', value=exam.history,
                                  placeholder='Symptoms, operations, earlier findings') \
                .classes('w-full').mark('history')
            urgency = ui.radio({'routine': 'Routine', 'urgent': 'Urgent (reviewed first, costs more)'},
                               value=exam.urgency).props('inline').mark('urgency')

        with ui.card().classes('w-full'):
            ui.label('3. First radiologist\'s report (optional)').classes('text-h6')
            ui.label('If you already have a report, paste its text or upload it as PDF or image.') \
                .classes('text-body2')
            prior_text = ui.textarea('Text of the first report', value=exam.prior_report_text).classes('w-full') \
                .mark('prior_report_text')

            async def handle_prior(event: events.UploadEventArguments) -> None:
                folder = Path(tempfile.mkdtemp(prefix='prior-'))
                try:
                    path = folder / 'report'
                    await event.file.save(path)
                    await run.io_bound(studies.add_prior_report_file, actor=actor, examination_id=examination_id,
                                       filename=event.file.name, path=path)
                    ui.notify(f'{event.file.name} attached.', type='positive', position='top')
                except Exception as error:  # noqa: BLE001 (domain errors shown, others logged)
                    notify_error(error)
                finally:
                    shutil.rmtree(folder, ignore_errors=True)
                    event.sender.reset()
                image_list.refresh()

            def prior_too_large() -> None:
                ui.notify(f'The report file is larger than {studies.format_bytes(studies.MAX_PRIOR_REPORT_BYTES)}. '
                          f'Upload a smaller PDF or photo.', type='negative', position='top')

            # NOTE: max_file_size is checked by the browser only; add_prior_report_file checks it again.
            ui.upload(label='Report as PDF or image', auto_upload=True, on_upload=handle_prior,
                      max_file_size=studies.MAX_PRIOR_REPORT_BYTES, on_rejected=prior_too_large) \
                .props('accept=".pdf,.png,.jpg,.jpeg"').classes('w-full').mark('prior-upload')

        def save() -> bool:
            """Store the details of the draft; called on every change, so nothing typed is lost."""
            try:
                examinations.update_details(
                    actor=actor, examination_id=examination_id, modality=modality.value or '',
                    body_part=body_part.value or '', clinical_question=question.value or '',
                    history=history.value or '', urgency=urgency.value or 'routine',
                    prior_report_text=prior_text.value or '')
            except Exception as error:  # noqa: BLE001 (domain errors shown, others logged)
                notify_error(error)
                return False
            return True

        def save_draft() -> None:
            if save():
                ui.notify('Draft saved.', type='positive', position='top')

        for field in (body_part, question, history, prior_text):
            field.on('blur', save)
        for choice in (modality, urgency):
            choice.on_value_change(save)

        def submit() -> None:
            if not save():
                return
            try:
                examinations.submit(actor=actor, examination_id=examination_id)
                url = payments.start_checkout(actor=actor, examination_id=examination_id)
            except Exception as error:  # noqa: BLE001 (domain errors shown, others logged)
                notify_error(error)
                return
            ui.navigate.to(url)

        def cancel() -> None:
            try:
                examinations.cancel(actor=actor, examination_id=examination_id)
            except Exception as error:  # noqa: BLE001
                notify_error(error)
                return
            ui.navigate.to('/exams')

        payment_blocked_note(actor)
        with ui.row().classes('w-full justify-end gap-2'):
            ui.button('Discard', on_click=cancel).props('flat color=negative').mark('discard')
            ui.button('Save draft', on_click=save_draft).props('outline').mark('save-draft')
            ui.button('Submit and pay', icon='payment', on_click=submit).mark('submit')


def exam_page(examination_id: str, checkout: str = '') -> None:
    """Show an examination; `checkout` is "success" or "cancelled" when the patient returns from Stripe."""
    actor = require_actor(Role.PATIENT, Role.ADMIN)
    if actor is None:
        return
    exam = _load(actor, examination_id, 'examination')
    if exam is None:
        return
    if exam.status == ExamStatus.DRAFT and actor.role == Role.PATIENT:
        ui.navigate.to(f'/exams/{examination_id}/edit')
        return

    with frame('Examination', actor):
        with ui.row().classes('w-full items-center justify-between'):
            ui.label(' '.join(p for p in (exam.modality, exam.body_part) if p) or 'Examination').classes('text-h5')
            status_badge(exam.status).mark('status')
        _status_explanation(exam)
        if actor.role == Role.PATIENT:
            _checkout_return(actor, exam, checkout)

        if exam.status == ExamStatus.AWAITING_PAYMENT and actor.role == Role.PATIENT:
            def pay() -> None:
                try:
                    url = payments.start_checkout(actor=actor, examination_id=examination_id)
                except Exception as error:  # noqa: BLE001
                    notify_error(error)
                    return
                ui.navigate.to(url)
            payment_blocked_note(actor)
            ui.button(f'Pay {format_money(exam.price_cents, exam.currency)}', icon='payment', on_click=pay) \
                .mark('pay')

        report = reports.view_report(actor=actor, examination_id=examination_id, page='examination')
        if report is not None and report.is_final:
            with ui.card().classes('w-full').mark('report'):
                ui.label('Radiologist\'s report' + (f' (version {report.version})' if report.addenda else '')) \
                    .classes('text-h6')
                final_report(actor, examination_id, report, can_amend=False)
            question_thread(actor, examination_id)

        if actor.role == Role.PATIENT and exam.status not in sharing.UNSHAREABLE:
            share_section(actor, examination_id)

        _timeline(exam, report)

        with ui.card().classes('w-full'):
            ui.label('Details').classes('text-h6')
            _detail('Type', examinations.MODALITIES.get(exam.modality, exam.modality))
            _detail('Body part', exam.body_part)
            _detail('Urgency', exam.urgency.capitalize())
            _detail('Question', exam.clinical_question)
            _detail('History', exam.history)
            _detail('First report', exam.prior_report_text)
            _detail('Price', format_money(exam.price_cents, exam.currency))
            _detail('Submitted', format_time(exam.submitted_at))
            _detail('Paid', format_time(exam.paid_at))
            _detail('Report promised by', format_time(exam.due_at))
            if exam.doctor_name:
                _detail('Radiologist', exam.doctor_name)

        with ui.card().classes('w-full'):
            ui.label('Images').classes('text-h6')
            images_summary(actor, examination_id, can_edit=False)
            for _link_id, url, _note in exam.links:
                with ui.row().classes('items-center gap-2'):
                    ui.icon('link')
                    ui.label(url).classes('break-all')

        cancellable = {ExamStatus.AWAITING_PAYMENT, ExamStatus.PENDING}
        if actor.role == Role.ADMIN:
            cancellable.add(ExamStatus.UNDER_REVIEW)
        if exam.status in cancellable:
            def cancel() -> None:
                try:
                    examinations.cancel(actor=actor, examination_id=examination_id)
                except Exception as error:  # noqa: BLE001
                    notify_error(error)
                    return
                ui.notify('The examination was cancelled.', type='positive', position='top')
                ui.navigate.reload()

            def ask_cancel() -> None:
                if exam.status == ExamStatus.AWAITING_PAYMENT:
                    lines = ['The open payment is closed, so nothing is charged.']
                else:
                    lines = [f'The payment of {format_money(exam.price_cents, exam.currency)} is refunded.']
                if exam.status == ExamStatus.UNDER_REVIEW:
                    lines.append(f'{exam.doctor_name or "The radiologist"} can no longer work on it.')
                lines.append('A cancelled examination cannot be reopened.')
                confirm.ask(title='Cancel this examination?', lines=lines, action='Cancel examination',
                            dismiss='Keep the examination', on_confirm=cancel)

            confirm = ConfirmDialog('cancel-confirm')
            ui.button('Cancel examination', on_click=ask_cancel).props('flat color=negative').mark('cancel')


def _timeline(exam: examinations.ExamView, report: reports.ReportView | None) -> None:
    """List what happened to the examination, with times, oldest first."""
    steps = [('Submitted', exam.submitted_at), ('Paid', exam.paid_at), ('Accepted by a radiologist', exam.accepted_at),
             ('Report signed', exam.reported_at)]
    if report is not None:
        steps += [(f'Addendum {addendum.number} signed', addendum.signed_at) for addendum in report.addenda]
    steps.append(('Cancelled', exam.cancelled_at))
    done = [(label, moment) for label, moment in steps if moment is not None]
    if not done:
        return
    with ui.card().classes('w-full').mark('timeline'):
        ui.label('Timeline').classes('text-h6')
        with ui.timeline(side='right').props('dense layout=dense'):
            for label, moment in done:
                ui.timeline_entry(title=label, subtitle=format_time(moment))


CONFIRMATION_POLL_SECONDS = 2.0
CONFIRMATION_WAIT_SECONDS = 120.0


def _checkout_return(actor: Actor, exam: examinations.ExamView, checkout: str) -> None:
    """Explain what happens after the patient left the payment page, and reload once Stripe confirms."""
    if checkout == 'cancelled' and exam.status == ExamStatus.AWAITING_PAYMENT:
        ui.label('You left the payment page without paying. Your request is saved: pay when you are ready.') \
            .classes('text-body2 text-warning-strong').mark('checkout-cancelled')
        return
    if checkout != 'success' or exam.status != ExamStatus.AWAITING_PAYMENT:
        return
    # Only Stripe's webhook marks the examination as paid, which can take a few seconds after the return.
    message = ui.label('Thank you. We are waiting for the payment confirmation from Stripe; this page updates '
                       'by itself.').classes('text-body2 text-primary').mark('checkout-confirming')
    waited = {'seconds': 0.0}

    def check() -> None:
        waited['seconds'] += CONFIRMATION_POLL_SECONDS
        try:
            current = examinations.get_exam(actor=actor, examination_id=exam.id)
        except NotFoundError:
            timer.deactivate()
            return
        if current.status != ExamStatus.AWAITING_PAYMENT:
            ui.navigate.to(f'/exams/{exam.id}')
        elif waited['seconds'] >= CONFIRMATION_WAIT_SECONDS:
            timer.deactivate()
            message.text = ('The confirmation is taking longer than usual. You will get an email as soon as it '
                            'arrives; there is no need to pay again.')

    timer = ui.timer(CONFIRMATION_POLL_SECONDS, check)


def _suggest_from_images(actor: Actor, examination_id: str, modality: ui.select, body_part: ui.input) -> bool:
    """Fill the examination type and body part from the uploaded images where the patient left them empty.

    Returns True when a field changed, so the caller saves the draft.
    """
    suggested_modality, suggested_body_part = examinations.suggest_details(actor=actor,
                                                                           examination_id=examination_id)
    changed = False
    if not modality.value and suggested_modality:
        modality.value = suggested_modality
        changed = True
    if not (body_part.value or '').strip() and suggested_body_part:
        body_part.value = suggested_body_part
        changed = True
    return changed


def _status_explanation(exam: examinations.ExamView) -> None:
    texts = {
        ExamStatus.AWAITING_PAYMENT: 'Your request is complete. Pay to send it to our radiologists.',
        ExamStatus.PENDING: 'Paid. Your case waits for a radiologist to accept it.',
        ExamStatus.UNDER_REVIEW: 'A radiologist is reviewing your images.',
        ExamStatus.REPORTED: 'Your report is ready. We are sending it to you by email.',
        ExamStatus.COMPLETED: 'Your report is ready and was sent to you by email.',
        ExamStatus.CANCELLED: 'This examination was cancelled.',
    }
    text = texts.get(ExamStatus(exam.status))
    if text:
        ui.label(text).classes('text-body1').mark('status-text')
    if exam.due_at is not None and exam.status in {ExamStatus.PENDING, ExamStatus.UNDER_REVIEW}:
        ui.label(f'We promised your report by {format_time(exam.due_at)}.').classes('text-body2').mark('promise')


def _detail(label: str, value: str | None) -> None:
    if not value:
        return
    with ui.row().classes('w-full no-wrap gap-2'):
        ui.label(label).classes('text-grey-7 w-28 shrink-0')
        ui.label(value).classes('whitespace-pre-wrap break-words')


def test_checkout_page(provider_ref: str) -> None:
    actor = require_actor(Role.PATIENT)
    if actor is None:
        return
    try:
        payment, summary = payments.get_test_checkout(actor=actor, provider_ref=provider_ref)
    except NotFoundError:
        not_found_page(actor, 'Checkout')
        return

    with frame('Test checkout', actor):
        with ui.card().classes('w-full max-w-md mx-auto'):
            with ui.row().classes('items-center gap-2'):
                ui.icon('science', color='orange-8')
                ui.label('TEST MODE: no real payment is made').classes('text-orange-9 text-weight-bold') \
                    .mark('test-mode')
            ui.label(summary).classes('text-body1')
            ui.label(format_money(payment.amount_cents, payment.currency)).classes('text-h4').mark('amount')
            if payment.status != 'open':
                ui.label(f'This checkout is {payment.status}.').mark('checkout-state')

            def pay() -> None:
                try:
                    examination_id = payments.complete_test_checkout(actor=actor, provider_ref=provider_ref)
                except Exception as error:  # noqa: BLE001
                    notify_error(error)
                    return
                ui.notify('Payment received. Thank you!', type='positive', position='top')
                ui.navigate.to(f'/exams/{examination_id}')

            def cancel() -> None:
                try:
                    examination_id = payments.cancel_test_checkout(actor=actor, provider_ref=provider_ref)
                except Exception as error:  # noqa: BLE001
                    notify_error(error)
                    return
                ui.notify('Payment cancelled. You can pay later from your examination.', position='top')
                ui.navigate.to(f'/exams/{examination_id}')

            with ui.row().classes('w-full gap-2'):
                ui.button('Pay (test)', icon='check', on_click=pay).classes('grow').mark('pay-test')
                ui.button('Cancel', on_click=cancel).props('outline').mark('cancel-test')
