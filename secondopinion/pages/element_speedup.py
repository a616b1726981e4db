"""Caches NiceGUI's check of whether an event handler takes arguments.

NiceGUI 3.18 calls `helpers.expects_arguments` for the change handlers of every element's classes,
style and props, so `inspect.signature` runs three times or more per element built: a quarter of
the time of the patient dashboard's first render (profile in docs/benchmarks.md). The result
depends only on the handler's code and default values, which this module uses as the cache key.
"""

from __future__ import annotations

import logging
import types
from collections.abc import Callable, Hashable

from nicegui import helpers

logger = logging.getLogger(__name__)

# Handler code is defined once per module, so a few hundred keys cover the whole app.
MAX_ANSWERS = 4096

_original: Callable[[Callable], bool] | None = None
_answers: dict[Hashable, bool] = {}


def _cache_key(func: Callable) -> Hashable | None:
    """Return what decides the handler's signature, or None when the code alone does not decide it."""
    bound = isinstance(func, types.MethodType)
    function = func.__func__ if bound else func
    if not isinstance(function, types.FunctionType) or hasattr(function, '__wrapped__') \
            or hasattr(function, '__signature__'):
        return None
    kwdefaults = tuple(function.__kwdefaults__.items()) if function.__kwdefaults__ else None
    key = (bound, function.__code__, function.__defaults__, kwdefaults)
    try:
        hash(key)
    except TypeError:  # a default value that cannot be hashed
        return None
    return key


def _expects_arguments(func: Callable) -> bool:
    assert _original is not None
    key = _cache_key(func)
    if key is None:
        return _original(func)
    answer = _answers.get(key)
    if answer is None:
        answer = _original(func)
        if len(_answers) < MAX_ANSWERS:
            _answers[key] = answer
    return answer


def install() -> None:
    """Replace NiceGUI's check with the cached one; calling it again changes nothing."""
    global _original
    if _original is not None:
        return
    _original = helpers.expects_arguments
    helpers.expects_arguments = _expects_arguments
    logger.debug('cached check of event handler arguments installed')
