"""Follow-up questions: after the report, the patient asks the reporting doctor, who answers in the app.

A patient may ask up to `max_follow_up_questions` questions per examination, one at a time: the next
question can be asked once the previous one is answered. Both sides are notified, and the thread is
part of the examination's record (the patient's data export includes it).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from ..config import get_settings
from ..db import session_scope
from ..models import Doctor, ExamQuestion, Examination, ExamStatus, Role, User
from ..models.base import utcnow
from . import audit, notifications
from .access import deny, get_visible_exam
from .actors import Actor, require_role
from ..i18n import Message, N_
from .errors import ConflictError, NotFoundError, ValidationError

logger = logging.getLogger(__name__)

QUESTION_MIN_CHARACTERS = 5
QUESTION_MAX_CHARACTERS = 2000
ANSWER_MIN_CHARACTERS = 2
ANSWER_MAX_CHARACTERS = 5000
# Questions can be asked only once the report is final.
ASKABLE_STATUSES = frozenset({ExamStatus.REPORTED, ExamStatus.COMPLETED})


@dataclass(frozen=True)
class QuestionView:
    id: int
    question: str
    asked_at: datetime
    answer: str | None
    answered_at: datetime | None
    doctor_name: str | None


@dataclass(frozen=True)
class Thread:
    """The questions of one examination, oldest first, and whether the patient may ask another now."""

    questions: tuple[QuestionView, ...]
    allowed: int
    can_ask: bool
    # The reason the patient cannot ask now, a Message translated where shown; empty when `can_ask` is true.
    reason: str

    @property
    def remaining(self) -> int:
        return max(0, self.allowed - len(self.questions))

    @property
    def open_question(self) -> QuestionView | None:
        return next((question for question in self.questions if question.answer is None), None)


# Kind of text ('question' or 'answer') -> the message when it is too short or too long.
TOO_SHORT = {'question': N_('Write at least {minimum} characters for your question.'),
             'answer': N_('Write at least {minimum} characters for your answer.')}
TOO_LONG = {'question': N_('The question has {length} characters; shorten it to at most {maximum}.'),
            'answer': N_('The answer has {length} characters; shorten it to at most {maximum}.')}


def _clean(text: str, *, minimum: int, maximum: int, what: str, field: str) -> str:
    text = (text or '').strip()
    if len(text) < minimum:
        raise ValidationError(TOO_SHORT[what], field=field, minimum=minimum)
    if len(text) > maximum:
        raise ValidationError(TOO_LONG[what], field=field, length=len(text), maximum=maximum)
    return text


def _doctor_name(session: Session, doctor_id: int | None) -> str | None:
    if doctor_id is None:
        return None
    doctor = session.get(Doctor, doctor_id)
    return doctor.user.full_name if doctor is not None else None


def _visible_thread_exam(session: Session, actor: Actor, examination_id: str) -> Examination:
    """Return the examination when the actor may read its questions: its patient, its doctor or an admin."""
    exam = get_visible_exam(session, actor, examination_id)
    if actor.role == Role.DOCTOR and exam.doctor_id != actor.doctor_id:
        raise deny(session, actor, exam, 'questions belong to the reporting doctor')
    return exam


def _thread(session: Session, exam: Examination) -> Thread:
    rows = session.scalars(select(ExamQuestion).where(ExamQuestion.examination_id == exam.id)
                           .order_by(ExamQuestion.asked_at, ExamQuestion.id)).all()
    views = tuple(QuestionView(id=row.id, question=row.question, asked_at=row.asked_at, answer=row.answer,
                               answered_at=row.answered_at,
                               doctor_name=_doctor_name(session, row.answered_by_doctor_id)) for row in rows)
    allowed = get_settings().max_follow_up_questions
    reason = ''
    if exam.status not in ASKABLE_STATUSES:
        reason = Message(N_('You can ask questions once your report is ready.'))
    elif allowed == 0:
        reason = Message(N_('This practice does not take follow-up questions.'))
    elif any(view.answer is None for view in views):
        reason = Message(N_('The radiologist has not answered your last question yet. You can ask another one '
                            'after the answer.'))
    elif len(views) >= allowed:
        reason = Message(N_('You have asked all {count} questions this examination includes.'), count=allowed)
    return Thread(questions=views, allowed=allowed, can_ask=not reason, reason=reason)


def get_thread(*, actor: Actor, examination_id: str) -> Thread:
    """Return the question thread of an examination for its patient, its reporting doctor or an admin."""
    with session_scope() as session:
        exam = _visible_thread_exam(session, actor, examination_id)
        return _thread(session, exam)


def ask(*, actor: Actor, examination_id: str, text: str) -> int:
    """Add the patient's question, notify the reporting doctor, and return the question id."""
    require_role(actor, Role.PATIENT)
    question = _clean(text, minimum=QUESTION_MIN_CHARACTERS, maximum=QUESTION_MAX_CHARACTERS, what='question',
                      field='question')
    with session_scope() as session:
        # Lock the examination's row before reading anything, so that questions sent at once are
        # checked one after the other. The update changes nothing, but it takes the row lock on
        # PostgreSQL and the write lock on SQLite, whose transactions would otherwise all read at once.
        session.execute(update(Examination).where(Examination.id == examination_id)
                        .values(status=Examination.status))
        exam = get_visible_exam(session, actor, examination_id)
        thread = _thread(session, exam)
        if not thread.can_ask:
            raise ConflictError('{reason}', reason=thread.reason)
        row = ExamQuestion(examination_id=exam.id, question=question, asked_at=utcnow())
        session.add(row)
        session.flush()
        _notify_doctor(session, exam)
        audit.record(session, actor, 'question.asked', 'examination', exam.id, question_id=row.id)
        logger.info('question %s asked on examination %s', row.id, exam.id)
        return row.id


def _notify_doctor(session: Session, exam: Examination) -> None:
    doctor = session.get(Doctor, exam.doctor_id) if exam.doctor_id is not None else None
    if doctor is None:
        logger.warning('examination %s has no reporting doctor to notify of a question', exam.id)
        return
    user = session.get(User, doctor.user_id)
    assert user is not None
    notifications.enqueue_email(session, user_id=user.id, examination_id=exam.id, recipient=user.email,
                                template='question_asked',
                                context={'name': user.full_name, 'examination_id': exam.id,
                                         'link': f'/doctor/cases/{exam.id}'})


def answer(*, actor: Actor, examination_id: str, question_id: int, text: str) -> None:
    """Store the reporting doctor's answer to an open question and notify the patient."""
    require_role(actor, Role.DOCTOR)
    reply = _clean(text, minimum=ANSWER_MIN_CHARACTERS, maximum=ANSWER_MAX_CHARACTERS, what='answer', field='answer')
    with session_scope() as session:
        exam = _visible_thread_exam(session, actor, examination_id)
        row = session.get(ExamQuestion, question_id)
        if row is None or row.examination_id != exam.id:
            raise NotFoundError(N_('Question'))
        answered = session.execute(
            update(ExamQuestion).where(ExamQuestion.id == row.id, ExamQuestion.answer.is_(None))
            .values(answer=reply, answered_by_doctor_id=actor.doctor_id, answered_at=utcnow()))
        if answered.rowcount != 1:
            raise ConflictError(N_('This question was already answered. Reload the page to see the answer.'))
        patient_user_id, _email, patient_name = _patient(session, exam)
        notifications.notify_patient(session, patient_user_id=patient_user_id, examination_id=exam.id,
                                     template='question_answered',
                                     context={'patient_name': patient_name, 'examination_id': exam.id})
        audit.record(session, actor, 'question.answered', 'examination', exam.id, question_id=row.id)
        logger.info('question %s on examination %s answered by doctor %s', row.id, exam.id, actor.doctor_id)


def _patient(session: Session, exam: Examination) -> tuple[int, str, str]:
    from .examinations import patient_email

    return patient_email(session, exam)


def open_question_counts(*, actor: Actor) -> dict[str, int]:
    """Return, per examination of the acting doctor, the number of questions waiting for an answer."""
    require_role(actor, Role.DOCTOR)
    with session_scope() as session:
        rows = session.execute(
            select(ExamQuestion.examination_id, func.count())
            .join(Examination, Examination.id == ExamQuestion.examination_id)
            .where(Examination.doctor_id == actor.doctor_id, ExamQuestion.answer.is_(None))
            .group_by(ExamQuestion.examination_id)).all()
        return {exam_id: count for exam_id, count in rows}


def export_rows(session: Session, examination_id: str) -> list[dict[str, str | None]]:
    """Return the thread as plain values for the patient's data export."""
    rows = session.scalars(select(ExamQuestion).where(ExamQuestion.examination_id == examination_id)
                           .order_by(ExamQuestion.asked_at, ExamQuestion.id)).all()
    return [{'question': row.question, 'asked_at': row.asked_at.isoformat(), 'answer': row.answer,
             'answered_at': row.answered_at.isoformat() if row.answered_at else None,
             'answered_by': _doctor_name(session, row.answered_by_doctor_id)} for row in rows]
