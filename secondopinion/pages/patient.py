"""Patient pages: the list of examinations, the request form, the status page and the test checkout."""

from __future__ import annotations

import logging

from nicegui import ui

from ..models import ExamStatus, Role
from ..services import examinations, payments, reports, sharing
from ..services.actors import Actor
from ..services.errors import NotFoundError
from ..services.payments import format_money
from .account import payment_blocked_note
from .badges import status_badge
from .confirm import ConfirmDialog
from .exam_form import ExamForm
from .images import images_summary
from .layout import format_time, frame, not_found_page, notify_error, require_actor
from .questions import question_thread
from .sharing import share_section
from .report_editor import final_report

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
            if exams:
                ui.button('New examination', icon='add', on_click=lambda: ui.navigate.to('/exams/new')) \
                    .mark('new-exam')
        if not exams:
            # The empty list explains the next step and offers the one button to start it.
            with ui.card().classes('w-full items-center q-pa-lg').mark('exams-empty'):
                ui.icon('folder_open', size='3rem').classes('text-grey-6')
                ui.label('You have no examinations yet.').classes('text-h6')
                ui.label('Start a new examination: upload your images or give a link to them, ask your question, '
                         'and pay. A radiologist then writes your report.').classes('text-center')
                ui.button('Start a new examination', icon='add', on_click=lambda: ui.navigate.to('/exams/new')) \
                    .mark('new-exam')
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


def edit_exam_page(examination_id: str, step: str = '') -> None:
    """Show the form of a draft at `step` (images, details, review or payment), else at its first incomplete step."""
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
        ExamForm(actor, exam, step).build()


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
            images_summary(actor, examination_id, can_edit=False,
                           links=[url for _link_id, url, _note in exam.links])

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
                ui.icon('science').classes('text-warning-strong')
                ui.label('TEST MODE: no real payment is made').classes('text-warning-strong text-weight-bold') \
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
