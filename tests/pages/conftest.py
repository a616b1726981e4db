"""Page-test settings: more patience for `should_see` than NiceGUI's default of three tries."""

from __future__ import annotations

from functools import partialmethod

import pytest
from nicegui.testing import User

# Each try waits 0.1 s. Three tries (NiceGUI's default) are too few on a loaded 2-core CI machine,
# where a navigation with a database round trip has taken longer than 0.3 s.
RETRIES = 50


@pytest.fixture(autouse=True)
def checks_wait_longer(monkeypatch) -> None:
    monkeypatch.setattr(User, 'should_see', partialmethod(User.should_see, retries=RETRIES))
    monkeypatch.setattr(User, 'should_not_see', partialmethod(User.should_not_see, retries=RETRIES))
