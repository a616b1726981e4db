"""The follow-up question thread of an examination: the patient asks, the reporting doctor answers."""

from __future__ import annotations

from nicegui import ui

from ..i18n import _, ngettext, translate
from ..models import Role
from ..services import questions
from ..services.actors import Actor
from ..services.errors import DomainError
from .layout import format_time, notify_error, show_form_error


def question_thread(actor: Actor, examination_id: str) -> None:
    """Show the thread in a card, with the form to ask (patient) or to answer (reporting doctor)."""
    thread = questions.get_thread(actor=actor, examination_id=examination_id)
    if actor.role == Role.DOCTOR and not thread.questions:
        return
    with ui.card().classes('w-full').mark('questions'):
        ui.label(_('Questions about the report')).classes('text-h6')
        if not thread.questions and actor.role == Role.PATIENT and thread.can_ask:
            ui.label(_('Something in the report unclear? Ask the radiologist who wrote it.')) \
                .classes('text-body2 text-grey-8')
        for entry in thread.questions:
            _entry(actor, examination_id, entry)
        if actor.role == Role.PATIENT:
            _ask_form(actor, examination_id, thread)


def _entry(actor: Actor, examination_id: str, entry: questions.QuestionView) -> None:
    with ui.column().classes('w-full gap-1 q-mb-sm').mark(f'question-{entry.id}'):
        ui.label(_('Question, {time}', time=format_time(entry.asked_at))).classes('text-caption text-grey-7')
        ui.label(entry.question).classes('text-body1 whitespace-pre-wrap break-words')
        if entry.answer is not None:
            ui.label(_('Answer from {name}, {time}', name=entry.doctor_name, time=format_time(entry.answered_at))
                     if entry.doctor_name else
                     _('Answer from the radiologist, {time}', time=format_time(entry.answered_at))) \
                .classes('text-caption text-grey-7 q-mt-xs')
            ui.label(entry.answer).classes('text-body1 whitespace-pre-wrap break-words q-pl-md') \
                .style('border-left: 3px solid var(--q-primary)').mark(f'answer-{entry.id}')
        elif actor.role == Role.DOCTOR:
            _answer_form(actor, examination_id, entry.id)
        else:
            ui.label(_('Waiting for the radiologist\'s answer.')).classes('text-body2 text-grey-8')


def _ask_form(actor: Actor, examination_id: str, thread: questions.Thread) -> None:
    if not thread.can_ask:
        ui.label(translate(thread.reason)).classes('text-body2 text-grey-8').mark('question-closed')
        return
    ui.label(ngettext('You can ask {count} more question.', 'You can ask {count} more questions.', thread.remaining)).classes('text-body2')
    text = ui.textarea(_('Your question'), validation=None) \
        .props(f'outlined autogrow maxlength={questions.QUESTION_MAX_CHARACTERS} counter') \
        .classes('w-full').mark('question-text')
    message = ui.label().classes('text-negative text-body2')

    def send() -> None:
        try:
            questions.ask(actor=actor, examination_id=examination_id, text=text.value)
        except DomainError as error:
            show_form_error(message, {'question': text}, error)
            return
        except Exception as error:  # noqa: BLE001 (logged by notify_error)
            notify_error(error)
            return
        ui.notify(_('Your question was sent to the radiologist.'), type='positive', position='top')
        ui.navigate.reload()

    ui.button(_('Send question'), icon='send', on_click=send).mark('send-question')


def _answer_form(actor: Actor, examination_id: str, question_id: int) -> None:
    text = ui.textarea(_('Your answer')) \
        .props(f'outlined autogrow maxlength={questions.ANSWER_MAX_CHARACTERS} counter') \
        .classes('w-full').mark(f'answer-text-{question_id}')
    message = ui.label().classes('text-negative text-body2')

    def send() -> None:
        try:
            questions.answer(actor=actor, examination_id=examination_id, question_id=question_id, text=text.value)
        except DomainError as error:
            show_form_error(message, {'answer': text}, error)
            return
        except Exception as error:  # noqa: BLE001 (logged by notify_error)
            notify_error(error)
            return
        ui.notify(_('Your answer was sent to the patient.'), type='positive', position='top')
        ui.navigate.reload()

    ui.button(_('Send answer'), icon='send', on_click=send).mark(f'send-answer-{question_id}')
