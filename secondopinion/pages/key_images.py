"""Key images on screen: the add button in the doctor's viewer, and the list in the editor and the final report."""

from __future__ import annotations

from collections.abc import Callable

from nicegui import ui

from ..i18n import _
from ..services import key_images
from ..services.actors import Actor
from .layout import notify_error
from .viewer import slice_url


def key_image_list(actor: Actor, examination_id: str, *, editable: bool) -> None:
    """Show the report's key images as thumbnails with their place, window and caption.

    With `editable`, each has a remove button; without key images, the editor explains how to add one
    and the final report shows nothing.
    """

    @ui.refreshable
    def content() -> None:
        try:
            items = key_images.list_key_images(actor=actor, examination_id=examination_id)
        except Exception as error:  # noqa: BLE001 (domain errors shown, others logged)
            notify_error(error)
            return
        if not items and not editable:
            return
        ui.label(_('Key images')).classes('text-subtitle1 text-weight-medium q-mt-sm')
        if not items:
            ui.label(_('None yet. In the image viewer, "Add to report" prints the slice you see, with its window, '
                       'in the report PDF (at most {limit}).', limit=key_images.MAX_KEY_IMAGES)) \
                .classes('text-caption text-grey-7').mark('key-images-empty')
            return
        with ui.row().classes('w-full gap-3'):
            for item in items:
                with ui.card().tight().classes('w-40 overflow-hidden').mark(f'key-image-{item.id}'):
                    description = _('Key image: {place}', place=item.position_label)
                    ui.image(slice_url(examination_id, item.series_id, item.slice_index, center=item.window_center,
                                       width=item.window_width)) \
                        .props(f'alt="{description}" fit=contain').classes('w-full h-40 bg-black')
                    with ui.column().classes('q-pa-sm gap-0'):
                        ui.label(item.position_label).classes('text-caption')
                        ui.label(item.window_label).classes('text-caption text-grey-7')
                        if item.caption:
                            ui.label(item.caption).classes('text-body2 break-words')
                    if editable:
                        ui.button(_('Remove'), icon='delete', on_click=lambda chosen=item.id: remove(chosen)) \
                            .props('flat dense no-caps color=negative').classes('q-ma-xs') \
                            .mark(f'remove-key-image-{item.id}')

    def remove(key_image_id: int) -> None:
        try:
            key_images.remove_key_image(actor=actor, examination_id=examination_id, key_image_id=key_image_id)
        except Exception as error:  # noqa: BLE001
            notify_error(error)
            return
        ui.notify(_('Key image removed from the report.'), position='top')
        content.refresh()

    content()


def add_key_image_button(actor: Actor, examination_id: str,
                         current_slice: Callable[[], tuple[int, int, float | None, float | None]]) -> None:
    """Add an "Add to report" button that stores the slice on screen, with its window, as a key image.

    `current_slice` returns (series id, slice index, window center, window width) of what the viewer shows;
    a window of (None, None) is the file's own.
    """
    with ui.dialog() as dialog, ui.card().classes('w-96 max-w-full'):
        ui.label(_('Add this slice to the report')).classes('text-h6')
        ui.label(_('The report PDF prints it with the window you see now.')).classes('text-caption text-grey-7')
        caption = ui.input(_('Caption (optional)'), placeholder=_('For example: 8 mm nodule, right upper lobe'),
                           validation={_('At most {limit} characters', limit=key_images.CAPTION_LIMIT):
                                       lambda value: len(value or '') <= key_images.CAPTION_LIMIT}) \
            .classes('w-full').mark('key-image-caption')
        with ui.row().classes('w-full justify-end'):
            ui.button(_('Cancel'), on_click=dialog.close).props('flat')
            ui.button(_('Add to report'), icon='add_photo_alternate', on_click=lambda: add()).mark('confirm-key-image')

    def add() -> None:
        series_id, index, center, width = current_slice()
        try:
            key_images.add_key_image(actor=actor, examination_id=examination_id, series_id=series_id,
                                     slice_index=index, window_center=center, window_width=width,
                                     caption=caption.value or '')
        except Exception as error:  # noqa: BLE001 (domain errors shown, others logged)
            notify_error(error)
            return
        dialog.close()
        caption.value = ''
        ui.notify(_('Slice {number} added to the report as a key image.', number=index + 1), type='positive',
                  position='top')

    ui.button(_('Add to report'), icon='add_photo_alternate', on_click=dialog.open) \
        .props('outline no-caps').mark('add-key-image')
