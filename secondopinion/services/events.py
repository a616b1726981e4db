"""Examination changes for live pages: services publish them, open pages subscribe to them.

A change reaches this process's subscribers at once and the other app instances' through the event
channel (services/bus.py).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from . import bus

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExamChanged:
    examination_id: str
    status: str
    doctor_id: int | None
    # True for the event that reports that changes may have been missed, such as while the event channel
    # was down; subscribers then reload everything they show. Its other fields are empty.
    missed: bool = False


BUS_TOPIC = 'examination-changed'
MISSED = ExamChanged(examination_id='', status='', doctor_id=None, missed=True)


Subscriber = Callable[[ExamChanged], None]

_subscribers: list[Subscriber] = []
_lock = threading.Lock()
# Examination changes delivered in this process so far, including MISSED; read by change_count().
_change_count = 0


def subscribe(callback: Subscriber) -> Callable[[], None]:
    """Register a callback and return the function that removes it again."""
    with _lock:
        _subscribers.append(callback)

    def unsubscribe() -> None:
        with _lock:
            if callback in _subscribers:
                _subscribers.remove(callback)

    return unsubscribe


def subscriber_count() -> int:
    with _lock:
        return len(_subscribers)


def publish(event: ExamChanged) -> None:
    """Deliver the event to this process's subscribers, then send it to the other instances."""
    _deliver(event)
    bus.forward(BUS_TOPIC, {'examination_id': event.examination_id, 'status': event.status,
                            'doctor_id': event.doctor_id})


def change_count() -> int:
    """Return how many examination changes this process has delivered, a number that only grows.

    A result computed after reading count N reflects every change up to N, because the count grows
    before the subscribers are called and the changes are published after their commit.
    """
    with _lock:
        return _change_count


def _deliver(event: ExamChanged) -> None:
    """Call every subscriber; a failing subscriber is logged and does not stop the others."""
    global _change_count
    with _lock:
        _change_count += 1
        callbacks = list(_subscribers)
    for callback in callbacks:
        try:
            callback(event)
        except Exception:
            logger.exception('event subscriber failed for examination %s', event.examination_id)


def _receive(data: dict) -> None:
    """Event channel handler: a change that another instance published."""
    doctor_id = data.get('doctor_id')
    _deliver(ExamChanged(examination_id=str(data['examination_id']), status=str(data['status']),
                         doctor_id=int(doctor_id) if doctor_id is not None else None))


bus.on_message(BUS_TOPIC, _receive, on_gap=lambda: _deliver(MISSED))
