"""In-process event bus: services publish examination changes, open pages subscribe to them."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExamChanged:
    examination_id: str
    status: str
    doctor_id: int | None


Subscriber = Callable[[ExamChanged], None]

_subscribers: list[Subscriber] = []
_lock = threading.Lock()


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
    """Call every subscriber; a failing subscriber is logged and does not stop the others."""
    with _lock:
        callbacks = list(_subscribers)
    for callback in callbacks:
        try:
            callback(event)
        except Exception:
            logger.exception('event subscriber failed for examination %s', event.examination_id)
