"""Pages of the pending list shared by the open doctor boards of this process.

After an examination changes, every open board of this process queries its page again, so 100 open
boards run 100 identical queries within a fraction of a second. `list_pending_shared` returns the
result of an identical query that started after the latest change and at most MAX_AGE_SECONDS ago,
and runs the query otherwise. Boards that query at the same moment before any of them has finished
still run their own query each, so the saving is largest when the boards outnumber the threads.
"""

from __future__ import annotations

import threading
import time

from ..models import Role
from . import events, examinations
from .actors import Actor, require_role
from .examinations import ExamView

# A shared page is at most this old, so that a board's periodic refresh still brings in changes
# whose event never arrived (from another instance while the event channel was down).
MAX_AGE_SECONDS = 1.0
MAX_ENTRIES = 256

_Key = tuple[str, int, int, int, str, str, str]
_results: dict[_Key, tuple[float, tuple[list[ExamView], int]]] = {}
_lock = threading.Lock()


def list_pending_shared(*, actor: Actor, limit: int, offset: int, modality: str = '', body_part: str = '',
                        urgency: str = '') -> tuple[list[ExamView], int]:
    """Return one page of the pending list as `examinations.list_pending` does, shared with identical requests.

    The returned list is shared between callers and must not be changed.
    """
    require_role(actor, Role.DOCTOR, Role.ADMIN)
    # The role is part of the key, because doctors in de-identified review get pseudonyms where admins get names.
    key = (str(actor.role), events.change_count(), limit, offset, modality or '', body_part or '', urgency or '')
    started = time.monotonic()
    with _lock:
        shared = _results.get(key)
        if shared is not None and started - shared[0] <= MAX_AGE_SECONDS:
            return shared[1]

    result = examinations.list_pending(actor=actor, limit=limit, offset=offset, modality=modality,
                                       body_part=body_part, urgency=urgency)
    with _lock:
        _results[key] = (started, result)
        if len(_results) > MAX_ENTRIES:
            for old_key in [old for old, (at, _) in _results.items() if started - at > MAX_AGE_SECONDS]:
                del _results[old_key]
            while len(_results) > MAX_ENTRIES:
                del _results[next(iter(_results))]
    return result


def clear() -> None:
    """Forget every shared page, for tests that start a new database or change rows without publishing a change."""
    with _lock:
        _results.clear()
