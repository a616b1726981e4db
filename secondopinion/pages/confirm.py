"""A confirmation dialog for actions that cannot be undone with one click."""

from __future__ import annotations

from collections.abc import Callable

from nicegui import ui

from ..i18n import _


class ConfirmDialog:
    """Confirmation dialog that one panel reuses for each question. The action runs only after its button is pressed.

    `marker` prefixes the markers of the dialog ("-dialog"), its text ("-title", "-text") and its buttons
    ("-cancel", "-confirm"), so that several panels of one page can each have their own.
    """

    def __init__(self, marker: str) -> None:
        self._on_confirm: Callable[[], None] | None = None
        with ui.dialog() as self.dialog, ui.card().classes('max-w-lg'):
            self.dialog.mark(f'{marker}-dialog')
            self._title = ui.label('').classes('text-h6').mark(f'{marker}-title')
            self._text = ui.column().classes('gap-1 text-body2').mark(f'{marker}-text')
            with ui.row().classes('w-full justify-end'):
                self._dismiss = ui.button(_('Cancel'), on_click=self.dialog.close).props('flat') \
                    .mark(f'{marker}-cancel')
                self._action = ui.button('', on_click=self._confirm).props('color=negative') \
                    .mark(f'{marker}-confirm')

    def ask(self, *, title: str, lines: list[str], action: str, on_confirm: Callable[[], None],
            dismiss: str | None = None) -> None:
        """Open the dialog with a question, the consequences (one label per line) and the two button labels."""
        self._title.text = title
        self._text.clear()
        with self._text:
            for line in lines:
                ui.label(line)
        self._action.text = action
        self._dismiss.text = dismiss or _('Cancel')
        self._on_confirm = on_confirm
        self.dialog.open()

    def _confirm(self) -> None:
        on_confirm, self._on_confirm = self._on_confirm, None
        self.dialog.close()
        if on_confirm is not None:
            on_confirm()
