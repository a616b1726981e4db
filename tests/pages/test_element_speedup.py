"""The cached check of whether a NiceGUI event handler takes arguments returns what NiceGUI returns."""

from __future__ import annotations

import functools

from nicegui import helpers
from nicegui.helpers.functions import expects_arguments as nicegui_check

from secondopinion.pages import element_speedup


class Handlers:
    def with_argument(self, event):
        return event

    def without_argument(self):
        return None

    def with_default(self, event=None):
        return event


def _handlers():
    def make(default):
        return lambda value=default: value

    def plain(event):
        return event

    @functools.wraps(plain)
    def wrapped(*args):
        return plain(*args)

    handlers = Handlers()
    return [
        handlers.with_argument, handlers.without_argument, handlers.with_default,
        lambda: None, lambda event: event, lambda *args: args, lambda **kwargs: kwargs,
        make(1), make([1]),  # a closure with a default that cannot be hashed
        plain, wrapped, functools.partial(plain), print, Handlers,
    ]


def test_cached_answers_match_nicegui():
    element_speedup.install()
    assert helpers.expects_arguments is not nicegui_check
    for handler in _handlers() + _handlers():  # the second pass reads the cache
        assert helpers.expects_arguments(handler) == nicegui_check(handler), handler


def test_methods_share_one_answer_per_function():
    element_speedup.install()
    first, second = Handlers(), Handlers()
    helpers.expects_arguments(first.with_argument)
    assert element_speedup._cache_key(first.with_argument) == element_speedup._cache_key(second.with_argument)
    assert element_speedup._cache_key(first.with_argument) != element_speedup._cache_key(first.without_argument)
