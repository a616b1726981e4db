"""Keyboard focus shows a ring around buttons, on the page and in the coloured header."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from .conftest import DESKTOP

sync_api = pytest.importorskip('playwright.sync_api', reason='the playwright package is missing')

MAX_TABS = 30


def _tab_to(page: sync_api.Page, text: str) -> dict:
    """Press Tab until the focused element's text is `text`; return its text and box shadow as drawn."""
    for _ in range(MAX_TABS):
        page.keyboard.press('Tab')
        focused = page.evaluate('''() => {
            const element = document.activeElement;
            const style = getComputedStyle(element);
            return {text: element.innerText.trim(), shadow: style.boxShadow};
        }''')
        if focused['text'].lower() == text.lower():
            return focused
    raise AssertionError(f'{text} was not reached with {MAX_TABS} presses of Tab')


def test_keyboard_focus_ring(open_page: Callable[..., sync_api.Page]) -> None:
    page = open_page(**DESKTOP)
    page.goto('/login')
    page.get_by_label('Email').wait_for()

    # Chromium reports a box shadow as "colour x y blur spread", one ring after another.
    header_button = _tab_to(page, 'Register')
    assert header_button['shadow'] == 'rgb(255, 255, 255) 0px 0px 0px 2px'

    page_button = _tab_to(page, 'Sign in')
    assert page_button['shadow'] == 'rgb(255, 255, 255) 0px 0px 0px 2px, rgb(31, 41, 55) 0px 0px 0px 4px'
