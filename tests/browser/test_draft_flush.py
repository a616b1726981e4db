"""Text typed into the new-examination form just before the page is hidden or closed is saved all the same.

While the patient types, the form saves at most every 2 s, so these tests leave the page well within that time.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from .conftest import PHONE, register_patient, unique_email

sync_api = pytest.importorskip('playwright.sync_api', reason='the playwright package is missing')
expect = sync_api.expect


def _details_step(page: sync_api.Page, name: str) -> str:
    """Register a patient, open a new draft at its details step and return the address of that step."""
    page.goto('/register')
    register_patient(page, name=name, email=unique_email('flush'))
    page.goto('/exams/new')
    page.wait_for_url('**/edit')
    address = page.url.split('?', 1)[0] + '?step=details'
    page.goto(address)
    expect(page.get_by_label('Body part')).to_be_visible()
    return address


def test_text_kept_when_tab_closed(open_page: Callable[..., sync_api.Page]) -> None:
    page = open_page(**PHONE)
    address = _details_step(page, 'Clara Closer')
    question = 'Is the shadow on my left lung new?'

    page.clock.install()
    page.get_by_label('Your question for the radiologist').fill(question)
    page.close()

    reopened = page.context.new_page()
    reopened.goto(address)
    expect(reopened.get_by_label('Your question for the radiologist')).to_have_value(question)


def test_text_kept_when_page_hidden(open_page: Callable[..., sync_api.Page]) -> None:
    page = open_page(**PHONE)
    address = _details_step(page, 'Hanna Hidden')
    history = 'Knee operation in 2019'

    # Fake timers hold back the form's own save, which the browser sends 2 s after typing.
    page.clock.install()
    page.get_by_label('Relevant history').fill(history)
    # As a phone does when the patient switches to another app: the page stays open but hidden.
    page.evaluate("""() => {
        Object.defineProperty(document, 'visibilityState', {value: 'hidden', configurable: true});
        document.dispatchEvent(new Event('visibilitychange'));
    }""")

    other = page.context.new_page()
    other.goto(address)
    expect(other.get_by_label('Relevant history')).to_have_value(history)
