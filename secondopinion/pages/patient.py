"""Patient pages: the list of examinations, the request form, the status page and the test checkout."""

from __future__ import annotations

import logging
from html import escape

from nicegui import ui

from ..i18n import N_, _
from ..models import ExamStatus, Role
from ..services import examinations, payments, reports, sharing
from ..services.actors import Actor
from ..services.errors import NotFoundError
from ..services.payments import format_money
from .account import payment_blocked_note
from .badges import status_badge, status_badge_html
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
    with frame(_('My examinations'), actor):
        with ui.row().classes('w-full items-center justify-between'):
            ui.label(_('My examinations')).classes('text-h5')
            if exams:
                ui.button(_('New examination'), icon='add', on_click=lambda: ui.navigate.to('/exams/new')) \
                    .mark('new-exam')
        if not exams:
            # The empty list explains the next step and offers the one button to start it.
            with ui.card().classes('w-full items-center q-pa-lg').mark('exams-empty'):
                ui.icon('folder_open', size='3rem').classes('text-grey-6')
                ui.label(_('You have no examinations yet.')).classes('text-h6')
                ui.label(_('Start a new examination: upload your images or give a link to them, ask your question, '
                         'and pay. A radiologist then writes your report.')).classes('text-center')
                ui.button(_('Start a new examination'), icon='add', on_click=lambda: ui.navigate.to('/exams/new')) \
                    .mark('new-exam')
            return
        # One ui.html block for all cards: building NiceGUI elements is most of this page's time, and each card
        # is a plain link, which the keyboard and the browser's "open in new tab" also reach.
        cards = ''.join(_exam_card_html(exam) for exam in exams)
        ui.html(f'<div class="column no-wrap w-full gap-3">{cards}</div>', sanitize=False).classes('w-full') \
            .mark('exam-list')


def _exam_card_html(exam: examinations.ExamView) -> str:
    target = f'/exams/{exam.id}/edit' if exam.status == ExamStatus.DRAFT else f'/exams/{exam.id}'
    title = ' '.join(part for part in (exam.modality, exam.body_part) if part) or _('New examination')
    created = _('Created {time}', time=format_time(exam.created_at))
    return (f'<a href="{escape(target)}" class="q-card nicegui-card exam-card w-full text-dark" '
            f'style="text-decoration: none" data-exam="{escape(exam.id)}">'
            '<div class="row w-full items-center justify-between">'
            f'<div class="text-subtitle1 text-weight-medium">{escape(title)}</div>'
            f'{status_badge_html(exam.status)}</div>'
            f'<div class="text-caption text-grey-7">{escape(created)}</div></a>')


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

    with frame(_('New examination'), actor):
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

    with frame(_('Examination'), actor):
        with ui.row().classes('w-full items-center justify-between'):
            ui.label(' '.join(p for p in (exam.modality, exam.body_part) if p) or _('Examination')).classes('text-h5')
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
            ui.button(_('Pay {amount}', amount=format_money(exam.price_cents, exam.currency)), icon='payment',
                      on_click=pay) \
                .mark('pay')

        report = reports.view_report(actor=actor, examination_id=examination_id, page='examination')
        if report is not None and report.is_final:
            with ui.card().classes('w-full').mark('report'):
                ui.label(_('Radiologist\'s report (version {version})', version=report.version) if report.addenda
                         else _('Radiologist\'s report')) \
                    .classes('text-h6')
                final_report(actor, examination_id, report, can_amend=False)
            question_thread(actor, examination_id)

        if actor.role == Role.PATIENT and exam.status not in sharing.UNSHAREABLE:
            share_section(actor, examination_id)

        _timeline(exam, report)

        with ui.card().classes('w-full'):
            ui.label(_('Details')).classes('text-h6')
            _detail(_('Type'), _(examinations.MODALITIES.get(exam.modality, exam.modality)))
            _detail(_('Body part'), exam.body_part)
            _detail(_('Urgency'), _(exam.urgency.capitalize()))
            _detail(_('Question'), exam.clinical_question)
            _detail(_('History'), exam.history)
            _detail(_('First report'), exam.prior_report_text)
            _detail(_('Price'), format_money(exam.price_cents, exam.currency))
            _detail(_('Submitted'), format_time(exam.submitted_at))
            _detail(_('Paid'), format_time(exam.paid_at))
            _detail(_('Report promised by'), format_time(exam.due_at))
            if exam.doctor_name:
                _detail(_('Radiologist'), exam.doctor_name)

        with ui.card().classes('w-full'):
            ui.label(_('Images')).classes('text-h6')
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
                ui.notify(_('The examination was cancelled.'), type='positive', position='top')
                ui.navigate.reload()

            def ask_cancel() -> None:
                if exam.status == ExamStatus.AWAITING_PAYMENT:
                    lines = [_('The open payment is closed, so nothing is charged.')]
                else:
                    lines = [_('The payment of {amount} is refunded.',
                               amount=format_money(exam.price_cents, exam.currency))]
                if exam.status == ExamStatus.UNDER_REVIEW:
                    lines.append(_('{name} can no longer work on it.', name=exam.doctor_name) if exam.doctor_name
                                 else _('The radiologist can no longer work on it.'))
                lines.append(_('A cancelled examination cannot be reopened.'))
                confirm.ask(title=_('Cancel this examination?'), lines=lines, action=_('Cancel examination'),
                            dismiss=_('Keep the examination'), on_confirm=cancel)

            confirm = ConfirmDialog('cancel-confirm')
            ui.button(_('Cancel examination'), on_click=ask_cancel).props('flat color=negative').mark('cancel')


def _timeline(exam: examinations.ExamView, report: reports.ReportView | None) -> None:
    """List what happened to the examination, with times, oldest first."""
    steps = [(_('Submitted'), exam.submitted_at), (_('Paid'), exam.paid_at),
             (_('Accepted by a radiologist'), exam.accepted_at), (_('Report signed'), exam.reported_at)]
    if report is not None:
        steps += [(_('Addendum {number} signed', number=addendum.number), addendum.signed_at)
                  for addendum in report.addenda]
    steps.append((_('Cancelled'), exam.cancelled_at))
    done = [(label, moment) for label, moment in steps if moment is not None]
    if not done:
        return
    with ui.card().classes('w-full').mark('timeline'):
        ui.label(_('Timeline')).classes('text-h6')
        with ui.timeline(side='right').props('dense layout=dense'):
            for label, moment in done:
                ui.timeline_entry(title=label, subtitle=format_time(moment))


# States of a test checkout, as the sentence "This checkout is ..." names them.
CHECKOUT_STATES = {'open': N_('open'), 'succeeded': N_('paid'), 'cancelled': N_('cancelled'),
                   'refunded': N_('refunded')}
CONFIRMATION_POLL_SECONDS = 2.0
CONFIRMATION_WAIT_SECONDS = 120.0


def _checkout_return(actor: Actor, exam: examinations.ExamView, checkout: str) -> None:
    """Explain what happens after the patient left the payment page, and reload once Stripe confirms."""
    if checkout == 'cancelled' and exam.status == ExamStatus.AWAITING_PAYMENT:
        ui.label(_('You left the payment page without paying. Your request is saved: pay when you are ready.')) \
            .classes('text-body2 text-warning-strong').mark('checkout-cancelled')
        return
    if checkout != 'success' or exam.status != ExamStatus.AWAITING_PAYMENT:
        return
    # Only Stripe's webhook marks the examination as paid, which can take a few seconds after the return.
    message = ui.label(_('Thank you. We are waiting for the payment confirmation from Stripe; this page updates '
                       'by itself.')).classes('text-body2 text-primary').mark('checkout-confirming')
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
            message.text = (_('The confirmation is taking longer than usual. You will get an email as soon as it '
                            'arrives; there is no need to pay again.'))

    timer = ui.timer(CONFIRMATION_POLL_SECONDS, check)


def _status_explanation(exam: examinations.ExamView) -> None:
    texts = {
        ExamStatus.AWAITING_PAYMENT: _('Your request is complete. Pay to send it to our radiologists.'),
        ExamStatus.PENDING: _('Paid. Your case waits for a radiologist to accept it.'),
        ExamStatus.UNDER_REVIEW: _('A radiologist is reviewing your images.'),
        ExamStatus.REPORTED: _('Your report is ready. We are sending it to you by email.'),
        ExamStatus.COMPLETED: _('Your report is ready and was sent to you by email.'),
        ExamStatus.CANCELLED: _('This examination was cancelled.'),
    }
    text = texts.get(ExamStatus(exam.status))
    if text:
        ui.label(text).classes('text-body1').mark('status-text')
    if exam.due_at is not None and exam.status in {ExamStatus.PENDING, ExamStatus.UNDER_REVIEW}:
        ui.label(_('We promised your report by {time}.', time=format_time(exam.due_at))).classes('text-body2').mark('promise')


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

    with frame(_('Test checkout'), actor):
        with ui.card().classes('w-full max-w-md mx-auto'):
            with ui.row().classes('items-center gap-2'):
                ui.icon('science').classes('text-warning-strong')
                ui.label(_('TEST MODE: no real payment is made')).classes('text-warning-strong text-weight-bold') \
                    .mark('test-mode')
            ui.label(summary).classes('text-body1')
            ui.label(format_money(payment.amount_cents, payment.currency)).classes('text-h4').mark('amount')
            if payment.status != 'open':
                ui.label(_('This checkout is {status}.', status=_(CHECKOUT_STATES.get(payment.status, payment.status)))).mark('checkout-state')

            def pay() -> None:
                try:
                    examination_id = payments.complete_test_checkout(actor=actor, provider_ref=provider_ref)
                except Exception as error:  # noqa: BLE001
                    notify_error(error)
                    return
                ui.notify(_('Payment received. Thank you!'), type='positive', position='top')
                ui.navigate.to(f'/exams/{examination_id}')

            def cancel() -> None:
                try:
                    examination_id = payments.cancel_test_checkout(actor=actor, provider_ref=provider_ref)
                except Exception as error:  # noqa: BLE001
                    notify_error(error)
                    return
                ui.notify(_('Payment cancelled. You can pay later from your examination.'), position='top')
                ui.navigate.to(f'/exams/{examination_id}')

            with ui.row().classes('w-full gap-2'):
                ui.button(_('Pay (test)'), icon='check', on_click=pay).classes('grow').mark('pay-test')
                ui.button(_('Cancel'), on_click=cancel).props('outline').mark('cancel-test')
