"""The doctors' live board: pending examinations, filtered and paged on the server, updated in place.

When an examination changes anywhere, the board queries its page again and sends the new list of
cases to the browser as one prop (pages/board_cases.py). The browser keeps the card of every case
that stays on the page, so a press on its Accept button survives the update.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from nicegui import context, run, ui

from ..i18n import N_, _, error_message, ngettext
from ..models import ExamStatus, Role, Urgency
from ..models.base import utcnow
from ..services import events, examinations, pending_pages
from ..services.actors import Actor
from ..services.errors import ConflictError, DomainError, NotFoundError
from ..services.examinations import ExamView
from .board_cases import BoardCase, BoardCases
from .layout import format_waiting, frame, notify_error, require_actor

logger = logging.getLogger(__name__)

BOARD_PAGE_SIZE = 50
# How often an open board checks whether an examination changed. A change reaches the board within
# this delay plus the time of one page query.
BOARD_POLL_SECONDS = 0.3
# How often the board reloads without an event: this advances the waiting times and brings in changes
# whose event never arrived, such as one from another instance while the event channel was down.
REFRESH_SECONDS = 30.0
# A countdown shorter than this is shown in the warning colour.
DUE_SOON = timedelta(hours=2)
# Only these statuses can put a case on the pending list or take it off, so other events cause no query.
BOARD_STATUSES = frozenset({ExamStatus.PENDING, ExamStatus.UNDER_REVIEW, ExamStatus.CANCELLED})

ANY = ''
# Filter choices, translated where the board shows them.
MODALITY_OPTIONS = {ANY: N_('Any type'), **examinations.MODALITIES}
URGENCY_OPTIONS = {ANY: N_('Any urgency'), Urgency.URGENT.value: N_('Urgent'), Urgency.ROUTINE.value: N_('Routine')}


def _translated(options: dict[str, str]) -> dict[str, str]:
    return {value: _(label) for value, label in options.items()}


def register() -> None:
    ui.page('/doctor')(board_page)


def format_time_left(due: datetime | None, now: datetime) -> tuple[str, str]:
    """Return the countdown to the promised report, such as "due in 3 h 5 min", and its colour class.

    The duration comes from `format_waiting`, which picks the plural form of its days, so the
    Turkish texts read "2 gün 23 sa kaldı" and "1 sa 5 dk gecikti".
    """
    if due is None:
        return '', ''
    if due <= now:
        return _('overdue by {duration}', duration=format_waiting(due, now)), 'text-negative text-weight-bold'
    text = _('due in {duration}', duration=format_waiting(now, due))
    return text, 'text-warning text-weight-medium' if due - now <= DUE_SOON else 'text-grey-8'


@dataclass(frozen=True)
class BoardFilters:
    """The board's filter values; an empty string matches every case."""

    modality: str = ANY
    body_part: str = ''
    urgency: str = ANY

    @property
    def active(self) -> bool:
        return bool(self.modality or self.body_part.strip() or self.urgency)


def _set_text(label: ui.label, text: str) -> None:
    """Change a label's text only when it differs, so an unchanged board sends nothing to the browser."""
    if label.text != text:
        label.set_text(text)


def board_case(exam: ExamView, now: datetime) -> BoardCase:
    """Return the texts of one case's card: what was asked, how long it waits and when its report is due."""
    time_left, classes = format_time_left(exam.due_at, now)
    waiting = ngettext('{count} image, waiting {duration}', '{count} images, waiting {duration}',
                       exam.image_count, duration=format_waiting(exam.paid_at, now))
    return BoardCase(id=exam.id, title=f'{exam.modality} {exam.body_part}', question=exam.clinical_question[:200],
                     urgent=exam.urgency == Urgency.URGENT, waiting=f'{waiting},' if time_left else waiting,
                     due=time_left, due_class=classes)


class Board:
    """One doctor's board in one browser tab: filters, pager and the cards of the current page."""

    def __init__(self, actor: Actor) -> None:
        self.actor = actor
        self.filters = BoardFilters()
        self.offset = 0
        self.total = 0
        # Set by the event subscriber, possibly from another thread, and cleared by `sync`.
        self.changed = False
        # Serializes queries, so the result of an older query never replaces that of a newer one.
        self._sync_lock = asyncio.Lock()
        self._next_refresh = time.monotonic() + REFRESH_SECONDS
        self._build()

    def _build(self) -> None:
        with ui.row().classes('w-full items-end gap-3'):
            ui.select(_translated(MODALITY_OPTIONS), value=ANY, label=_('Type of examination'),
                      on_change=lambda event: self.set_filters(modality=event.value or ANY)) \
                .classes('w-full sm:w-64').mark('filter-modality')
            # Quasar's debounce sends the typed text 400 ms after the last key, not once per key.
            ui.input(_('Body part contains'), on_change=lambda event: self.set_filters(body_part=event.value or '')) \
                .props('clearable debounce=400').classes('w-full sm:w-56').mark('filter-body-part')
            ui.select(_translated(URGENCY_OPTIONS), value=ANY, label=_('Urgency'),
                      on_change=lambda event: self.set_filters(urgency=event.value or ANY)) \
                .classes('w-full sm:w-44').mark('filter-urgency')
        with ui.row().classes('w-full items-center justify-between') as self.summary_row:
            self.count_label = ui.label().classes('text-caption').mark('board-count')
            with ui.row().classes('items-center gap-1') as self.pager:
                self.previous_button = ui.button(_('Previous'), icon='chevron_left', on_click=self.show_previous_page) \
                    .props('flat dense').mark('board-previous')
                self.next_button = ui.button(_('Next'), on_click=self.show_next_page) \
                    .props('flat dense icon-right=chevron_right').mark('board-next')
        self.error_label = ui.label().classes('text-negative').mark('board-error')
        self.error_label.set_visibility(False)
        with ui.card().classes('w-full items-center q-pa-lg').mark('board-empty') as self.empty_card:
            ui.icon('inbox', size='3rem').classes('text-grey-6')
            self.empty_label = ui.label()
        self.cases = BoardCases(self.accept).classes('w-full').mark('board-rows')

    # --- reading the page -----------------------------------------------------------------------

    def _query(self, filters: BoardFilters, offset: int) -> tuple[list[ExamView], int]:
        return pending_pages.list_pending_shared(actor=self.actor, limit=BOARD_PAGE_SIZE, offset=offset,
                                                 modality=filters.modality, body_part=filters.body_part,
                                                 urgency=filters.urgency)

    def load_first_page(self) -> None:
        """Fill the board while the page is built, so the first response already shows the cases."""
        try:
            exams, total = self._query(self.filters, self.offset)
        except DomainError as error:
            self._show_error(error_message(error))
            return
        self._apply(exams, total)

    async def sync(self) -> None:
        """Query the current page in a worker thread and bring the cards in line with it."""
        async with self._sync_lock:
            self.changed = False
            filters, offset = self.filters, self.offset
            try:
                result = await run.io_bound(self._query, filters, offset)
                if result is not None and not result[0] and result[1] and offset:
                    # Cases left and the page is now past the end: show the last page instead.
                    offset = (result[1] - 1) // BOARD_PAGE_SIZE * BOARD_PAGE_SIZE
                    result = await run.io_bound(self._query, filters, offset)
            except DomainError as error:
                self._show_error(error_message(error))
                return
            except Exception:
                logger.exception('board of doctor %s failed to load pending examinations', self.actor.doctor_id)
                self._show_error(_('Loading the pending examinations failed. The board tries again with the next '
                                   'change or within 30 seconds, or reload the page to try now.'))
                return
            if result is None or self.cases.is_deleted:
                return  # the app is stopping or the tab was closed during the query
            self.offset = offset
            self._apply(*result)

    async def poll(self) -> None:
        """Sync the board when an examination changed, and every REFRESH_SECONDS in any case."""
        if self.changed or time.monotonic() >= self._next_refresh:
            self._next_refresh = time.monotonic() + REFRESH_SECONDS
            await self.sync()

    def _apply(self, exams: list[ExamView], total: int) -> None:
        """Show the cases of the page just queried, with their waiting times as of now."""
        now = utcnow()
        self.cases.set_cases([board_case(exam, now) for exam in exams])
        self.total = total
        self.error_label.set_visibility(False)
        self._update_summary()

    def _update_summary(self) -> None:
        row_count = len(self.cases.cases)
        if self.total > row_count:
            count = ngettext('{count} waiting, showing {first} to {last}', '{count} waiting, showing {first} to {last}',
                             self.total, first=self.offset + 1, last=self.offset + row_count)
        else:
            count = ngettext('{count} waiting', '{count} waiting', self.total)
        _set_text(self.count_label, count)
        self.summary_row.set_visibility(self.total > 0)
        self.pager.set_visibility(self.total > BOARD_PAGE_SIZE)
        self.previous_button.set_enabled(self.offset > 0)
        self.next_button.set_enabled(self.offset + BOARD_PAGE_SIZE < self.total)
        self.empty_card.set_visibility(row_count == 0)
        _set_text(self.empty_label, _('No waiting examinations match these filters.') if self.filters.active
                  else _('No examinations are waiting. New paid cases appear here by themselves.'))

    def _show_error(self, message: str) -> None:
        _set_text(self.error_label, message)
        self.error_label.set_visibility(True)

    # --- doctor's actions -----------------------------------------------------------------------

    async def set_filters(self, **values: str) -> None:
        self.filters = replace(self.filters, **values)
        self.offset = 0
        await self.sync()

    async def show_previous_page(self) -> None:
        self.offset = max(0, self.offset - BOARD_PAGE_SIZE)
        await self.sync()

    async def show_next_page(self) -> None:
        if self.offset + BOARD_PAGE_SIZE < self.total:
            self.offset += BOARD_PAGE_SIZE
        await self.sync()

    def accept(self, examination_id: str) -> None:
        try:
            examinations.accept(actor=self.actor, examination_id=examination_id)
        except (ConflictError, NotFoundError) as error:
            # Taken by another doctor, cancelled, or this doctor was deactivated since the board opened.
            ui.notify(error_message(error), type='warning', position='top', multi_line=True)
            self.changed = True
            return
        except Exception as error:  # noqa: BLE001 (domain errors shown, others logged)
            notify_error(error)
            return
        ui.navigate.to(f'/doctor/cases/{examination_id}')


def board_page() -> None:
    actor = require_actor(Role.DOCTOR)
    if actor is None:
        return

    with frame(_('Pending examinations'), actor):
        ui.label(_('Pending examinations')).classes('text-h5')
        ui.label(_('Paid cases waiting for a radiologist, the closest to their promised report time first.')) \
            .classes('text-body2 text-grey-8')
        board = Board(actor)
        board.load_first_page()

    def on_change(event: events.ExamChanged) -> None:
        # Runs in the publisher's thread, which may serve another client, so it only sets a flag.
        if event.missed or event.status in BOARD_STATUSES:
            board.changed = True

    # One short timer also drives the waiting times: NiceGUI cancels a timer of a deleted client, but
    # its task ends only when its current sleep ends, so a 30 s timer would keep the board for 30 s.
    ui.timer(BOARD_POLL_SECONDS, board.poll)
    unsubscribe = events.subscribe(on_change)
    # NiceGUI deletes a client when its tab has been gone for longer than the reconnect timeout.
    context.client.on_delete(unsubscribe)
