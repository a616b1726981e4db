"""The list of case cards on the doctors' board, as one NiceGUI element.

The server builds a plain list of texts per case and the browser renders the cards (board_cases.js).
Built from NiceGUI elements, the 50 cards of a page took most of the board's first render, and every
open board built a new card when a case was paid (docs/benchmarks.md). One element with a list prop
costs about the same for any number of cards.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from nicegui.element import Element
from nicegui.events import GenericEventArguments

from ..i18n import _
from .badges import badge_html

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BoardCase:
    """The texts of one card, as plain text that Vue escapes in the browser."""

    id: str
    title: str
    question: str
    urgent: bool
    waiting: str
    due: str
    due_class: str


class BoardCases(Element, component='board_cases.js'):
    """The cards of the board's current page; `on_accept` gets the id of the case whose Accept was pressed."""

    def __init__(self, on_accept: Callable[[str], Any]) -> None:
        super().__init__()
        self.cases: list[BoardCase] = []
        self._props['cases'] = []
        self._props['acceptlabel'] = _('Accept')
        self._urgent_label = _('URGENT')
        self._props['urgentbadge'] = badge_html(self._urgent_label, 'danger', 'priority_high')
        self._on_accept = on_accept
        self.on('accept', self._accept)

    def set_cases(self, cases: list[BoardCase]) -> None:
        """Show these cases in this order; nothing is sent to the browser when they did not change."""
        if cases == self.cases:
            return
        self.cases = cases
        self._props['cases'] = [asdict(case) for case in cases]
        self.update()

    def _accept(self, event: GenericEventArguments) -> Any:
        examination_id = _examination_id(event)
        if not examination_id:
            logger.warning('board accept event without an examination id (client %s)', self.client.id)
            return None
        return self._on_accept(examination_id)

    def case(self, examination_id: str) -> BoardCase | None:
        return next((case for case in self.cases if case.id == examination_id), None)

    def _displayed_contents(self, *, only_visible: bool) -> list:
        # NiceGUI's test user finds texts through this; the browser shows the same texts.
        return [text for case in self.cases
                for text in (self._urgent_label if case.urgent else '', case.title, case.question, case.waiting, case.due,
                             self._props['acceptlabel'])]


def _examination_id(event: GenericEventArguments) -> str:
    """Return the examination id that the card's $emit sent, or an empty string when it sent none."""
    args = event.args
    if isinstance(args, list):  # an emit with several values arrives as a list
        args = args[0] if args else None
    return str(args) if isinstance(args, (str, int)) else ''
