"""The doctor's image viewer: series list, one large slice rendered by the slice route, scrolling and windowing.

The browser loads each slice as a PNG from `/api/exams/.../slices/{index}.png`, so pixels never go
through the websocket. The page only changes the image URL.
"""

from __future__ import annotations

from urllib.parse import urlencode

from nicegui import events, ui

from ..i18n import N_, _, ngettext
from ..models import ExamStatus, Role
from ..services import examinations, studies, viewer
from ..services.actors import Actor
from ..services.errors import NotFoundError
from .layout import frame, not_found_page, require_actor

ZOOM_LEVELS = (0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0)
PAGE_STEP = 10  # slices moved by PageUp and PageDown
VIEWER_CSS = '''
.viewer-stage { height: min(70vh, 100vw); background: #000; overflow: auto; display: flex; }
.viewer-stage img { margin: auto; flex-shrink: 0; object-fit: contain; max-width: none; }
.viewer-stage img.viewer-failed { visibility: hidden; }
'''
# The arrow, PageUp/PageDown, Home and End keys move through the slices, so they must not also scroll
# the page. Inputs keep their own handling of these keys. The slider (QSlider in Quasar 2.18) handles the
# arrow keys and PageUp/PageDown and stops their propagation, so only its Home and End reach this listener.
SCROLL_KEYS_SCRIPT = '''
<script>
document.addEventListener('keydown', (event) => {
  const keys = ['ArrowUp', 'ArrowDown', 'ArrowLeft', 'ArrowRight', 'PageUp', 'PageDown', 'Home', 'End'];
  const focus = document.activeElement;
  if (!keys.includes(event.key) || (focus && focus.closest('input, textarea, select'))) return;
  event.preventDefault();
});
</script>
'''


def register() -> None:
    ui.page('/doctor/cases/{examination_id}/viewer')(viewer_page)


def slice_url(examination_id: str, series_id: int, index: int, *, center: float | None = None,
              width: float | None = None, preset: str | None = None, base: str | None = None) -> str:
    """Return the URL of the rendered slice. An explicit window takes precedence over a preset.

    `base` replaces the examination's API address, for the share link routes.
    """
    query: dict[str, str] = {}
    if center is not None and width is not None:
        query = {'wc': f'{center:g}', 'ww': f'{width:g}'}
    elif preset:
        query = {'preset': preset}
    prefix = base or f'/api/exams/{examination_id}'
    url = f'{prefix}/series/{series_id}/slices/{index}.png'
    return f'{url}?{urlencode(query)}' if query else url


def viewer_page(examination_id: str) -> None:
    actor = require_actor(Role.DOCTOR)
    if actor is None:
        return
    try:
        exam = examinations.get_exam(actor=actor, examination_id=examination_id)
        series = viewer.open_viewer(actor=actor, examination_id=examination_id)
    except NotFoundError:
        not_found_page(actor, N_('Examination'))
        return

    # Imported here because the key image controls use this module's slice_url.
    from .key_images import add_key_image_button

    # The accepting doctor goes back to the review page, and a doctor previewing a pending case to the board.
    reviewing = exam.doctor_id == actor.doctor_id
    back = f'/doctor/cases/{examination_id}' if reviewing else '/doctor'
    has_images = any(item.frame_count for item in series)
    with frame(_('Image viewer'), actor):
        ui.add_css(VIEWER_CSS)
        ui.add_body_html(SCROLL_KEYS_SCRIPT)
        with ui.row().classes('w-full items-center justify-between'):
            title = f'{exam.modality} {exam.body_part}'
            ui.label(_('{title}: images', title=title)).classes('text-h5')
            with ui.row().classes('items-center gap-2') as actions:
                ui.button(_('Back to the case'), icon='arrow_back', on_click=lambda: ui.navigate.to(back)) \
                    .props('flat').mark('viewer-back')
        if not has_images:
            ui.label(_('This examination has no uploaded images to show.')).classes('text-grey-7').mark('viewer-empty')
            return
        _burned_in_warning(actor, examination_id)
        slice_viewer = SliceViewer(actor, examination_id, series)
        slice_viewer.build()
        if reviewing and exam.status == ExamStatus.UNDER_REVIEW:
            with actions:
                add_key_image_button(actor, examination_id, slice_viewer.current_slice)


def _aria_label(text: str) -> str:
    """Return the Quasar props entry that sets `aria-label` to the (translated) text."""
    return f'aria-label="{text}"'


def _burned_in_warning(actor: Actor, examination_id: str) -> None:
    """Show a warning naming the series whose pixels may show the patient's name, which de-identification leaves."""
    summary = studies.get_study_summary(actor=actor, examination_id=examination_id)
    flagged = [series for study in summary.studies for series in study.series if series.burned_in_text]
    if not flagged:
        return
    names = ', '.join(f'#{series.number if series.number is not None else "-"} '
                      f'{series.description or series.modality}' for series in flagged)
    ui.label(_('These series may show text burned into the pixels, such as the patient\'s name, which '
               'de-identification cannot remove: {names}.', names=names)).classes('text-body2 text-warning-strong') \
        .mark('viewer-burned-in-warning')


class SliceViewer:
    """The state of one open viewer (series, slice, window and zoom) and the elements that show it."""

    def __init__(self, actor: Actor, examination_id: str, series: list[viewer.ViewerSeries], *,
                 url_base: str | None = None) -> None:
        self.actor = actor
        self.examination_id = examination_id
        self.url_base = url_base
        self.series = [item for item in series if item.frame_count]
        self.current = self.series[0]
        self.index = 0
        self.preset: str | None = None
        self.showing_preset = False  # set while the preset's values are written into the window inputs
        self.preset_buttons: dict[str | None, ui.button] = {}
        self.zoom = 1.0
        self.slider_has_focus = False  # the slider then moves on arrow keys by itself

    # --- Layout ---------------------------------------------------------------------------------------------

    def build(self) -> None:
        with ui.element('div').classes('w-full flex flex-col md:flex-row md:flex-nowrap gap-4'):
            with ui.column().classes('w-full md:w-56 shrink-0 gap-1').mark('series-list'):
                self._series_list()
                with ui.expansion('Image information', icon='info').classes('w-full').mark('image-information'):
                    self._header_panel()
            with ui.column().classes('grow min-w-0 gap-2'):
                self._window_toolbar()
                self._stage()
                self._slice_controls()
        # NiceGUI by default also ignores keys while a <button> has the focus, which stopped the slice keys once
        # a keyboard user had tabbed to a button. `_on_key` handles no key that a button uses, so Enter and
        # Space still click it.
        ui.keyboard(on_key=self._on_key, ignore=['input', 'select', 'textarea'])
        self.slider.set_enabled(self.current.frame_count > 1)
        self._show()

    @ui.refreshable_method
    def _series_list(self) -> None:
        ui.label(_('Series')).classes('text-subtitle2')
        with ui.row().classes('w-full md:flex-col gap-1'):
            for item in self.series:
                number = item.number if item.number is not None else '-'
                selected = item.id == self.current.id
                with ui.button(on_click=lambda chosen=item: self._select_series(chosen)) \
                        .props(f'no-caps align=left {"unelevated" if selected else "outline"}') \
                        .classes('md:w-full').mark(f'series-{item.id}'):
                    with ui.column().classes('items-start gap-0'):
                        name = item.description or item.modality or _('Series')
                        ui.label(f'#{number} {name}').classes('ellipsis')
                        ui.label(ngettext('{modality}, {count} slice', '{modality}, {count} slices', item.frame_count,
                                          modality=item.modality)).classes('text-caption')

    @ui.refreshable_method
    def _header_panel(self) -> None:
        """Show the header of the series' first image, de-identified when the doctor reviews it so."""
        try:
            rows = viewer.series_header(actor=self.actor, examination_id=self.examination_id,
                                        series_id=self.current.id)
        except NotFoundError:
            rows = []
        if not rows:
            ui.label(_('No header information.')).classes('text-caption text-grey-7')
        for label, value in rows:
            with ui.row().classes('w-full no-wrap gap-2 text-caption').mark('header-row'):
                ui.label(_(label)).classes('text-grey-7 w-24 shrink-0')
                ui.label(value).classes('break-all')

    def _window_toolbar(self) -> None:
        with ui.row().classes('w-full items-center gap-2'):
            default = ui.button(_('File window'), on_click=lambda: self._set_preset(None))
            self.preset_buttons = {None: default.props('unelevated dense no-caps').mark('preset-default')}
            for preset, label in viewer.PRESET_LABELS.items():
                button = ui.button(_(label), on_click=lambda chosen=preset: self._set_preset(chosen))
                self.preset_buttons[preset] = button.props('outline dense no-caps').mark(f'preset-{preset}')
            self.center_input = ui.number(_('Center'), format='%g', on_change=self._window_typed).props('dense') \
                .classes('w-24').mark('window-center')
            self.width_input = ui.number(_('Width'), format='%g', min=1, on_change=self._window_typed).props('dense') \
                .classes('w-24').mark('window-width')
            ui.space()
            with ui.row().classes('items-center no-wrap gap-1'):
                ui.button(icon='zoom_out', on_click=lambda: self._step_zoom(-1)) \
                    .props('flat round dense ' + _aria_label(_('Zoom out'))).mark('zoom-out')
                self.zoom_label = ui.label().classes('text-caption w-10 text-center').mark('zoom-level')
                ui.button(icon='zoom_in', on_click=lambda: self._step_zoom(1)) \
                    .props('flat round dense ' + _aria_label(_('Zoom in'))).mark('zoom-in')

    def _stage(self) -> None:
        self.stage = ui.element('div').classes('viewer-stage w-full rounded-borders relative') \
            .on('wheel.prevent', self._on_wheel, ['deltaY'], throttle=0.05)
        with self.stage:
            selected_slice = _('Selected slice')
            self.image = ui.image().props('tag=img').props(f'alt="{selected_slice}"').mark('slice-image')
            # A hidden image still loads the next URL, so the next slice that renders replaces the message.
            self.image.on('error', lambda: self._show_unavailable(True))
            self.image.on('load', lambda: self._show_unavailable(False))
            self.unavailable = ui.label(_('Preview not available for this slice. Download the images to view it '
                                          'in a DICOM viewer.')) \
                .classes('absolute-center text-white text-center q-pa-md').mark('preview-unavailable')
            self.unavailable.set_visibility(False)

    def _show_unavailable(self, unavailable: bool) -> None:
        """Show the message in place of the image when the slice route returned an error."""
        self.unavailable.set_visibility(unavailable)
        if unavailable:
            self.image.classes(add='viewer-failed')
        else:
            self.image.classes(remove='viewer-failed')

    def _slice_controls(self) -> None:
        with ui.row().classes('w-full items-center no-wrap gap-3'):
            ui.button(icon='chevron_left', on_click=lambda: self._move(-1)) \
                .props('flat round dense ' + _aria_label(_('Previous slice')))
            # NOTE: the slider's throttled last event (50 ms) can undo a Home or End pressed right after a slider
            # key. A person is slower than that, but a test may not be.
            self.slider = ui.slider(min=0, max=max(1, self.current.frame_count - 1), value=0,
                                    on_change=lambda event: self._go_to(int(event.value or 0))) \
                .props(_aria_label(_('Slice'))).classes('grow').mark('slice-slider')
            self.slider.on('focus', lambda: setattr(self, 'slider_has_focus', True))
            self.slider.on('blur', lambda: setattr(self, 'slider_has_focus', False))
            ui.button(icon='chevron_right', on_click=lambda: self._move(1)) \
                .props('flat round dense ' + _aria_label(_('Next slice')))
            self.position_label = ui.label().classes('text-caption text-no-wrap').mark('slice-position')
        ui.label(_('Scroll with the mouse wheel over the image, the arrow keys, PageUp and PageDown, '
                   'or Home and End.')) \
            .classes('text-caption text-grey-7')

    # --- State changes --------------------------------------------------------------------------------------

    def current_slice(self) -> tuple[int, int, float | None, float | None]:
        """Return the series id, slice index and window (center, width) on screen; (None, None) is the file's own."""
        if self.preset:
            center, width = viewer.PRESETS[self.preset]
            return self.current.id, self.index, center, width
        center, width = self.center_input.value, self.width_input.value
        if center is None or width is None or width <= 0:
            return self.current.id, self.index, None, None
        return self.current.id, self.index, float(center), float(width)

    def _select_series(self, series: viewer.ViewerSeries) -> None:
        changes_modality = series.modality != self.current.modality
        self.current = series
        self.index = 0
        if changes_modality:
            # A window in CT's Hounsfield units means nothing for an MR series, so each modality starts with
            # the file's own window. Series of one modality keep the window, as when comparing CT reconstructions.
            self._set_window(None, None, preset=None)
        self.slider.props['max'] = max(1, series.frame_count - 1)
        self.slider.set_enabled(series.frame_count > 1)
        self.slider.value = 0  # calls _go_to when the value changes
        self._series_list.refresh()
        self._header_panel.refresh()
        self._show()

    def _go_to(self, index: int) -> None:
        self.index = min(max(index, 0), self.current.frame_count - 1)
        if self.slider.value != self.index:
            self.slider.value = self.index  # the slider's on_change calls _go_to again, which shows the slice
            return
        self._show()

    def _move(self, step: int) -> None:
        self._go_to(self.index + step)

    def _window_typed(self) -> None:
        """Show the slice with a typed window, which leaves the preset once it differs from the preset's values."""
        if self.showing_preset:
            return
        typed = (self.center_input.value, self.width_input.value)
        if self.preset and typed != viewer.PRESETS[self.preset]:
            self.preset = None
            self._highlight_preset()
        self._show()

    def _set_preset(self, preset: str | None) -> None:
        # The inputs show the preset's window, or are emptied for the file's own window, which each file sets.
        center, width = viewer.PRESETS[preset] if preset else (None, None)
        self._set_window(center, width, preset=preset)
        self._show()

    def _set_window(self, center: float | None, width: float | None, *, preset: str | None) -> None:
        """Set the preset and the window inputs without showing the slice, which the caller does."""
        self.preset = preset
        self.showing_preset = True
        self.center_input.set_value(center)
        self.width_input.set_value(width)
        self.showing_preset = False
        self._highlight_preset()

    def _step_zoom(self, step: int) -> None:
        position = ZOOM_LEVELS.index(self.zoom) + step
        self.zoom = ZOOM_LEVELS[min(max(position, 0), len(ZOOM_LEVELS) - 1)]
        self._show()
        # Scroll the stage to the middle of the zoomed image once the browser has laid out its new size.
        ui.run_javascript(f'''
            requestAnimationFrame(() => requestAnimationFrame(() => {{
                const stage = getHtmlElement({self.stage.id});
                stage.scrollLeft = (stage.scrollWidth - stage.clientWidth) / 2;
                stage.scrollTop = (stage.scrollHeight - stage.clientHeight) / 2;
            }}));
        ''')

    def _on_wheel(self, event: events.GenericEventArguments) -> None:
        delta = float(event.args.get('deltaY', 0) or 0)
        if delta:
            self._move(1 if delta > 0 else -1)

    def _on_key(self, event: events.KeyEventArguments) -> None:
        if not event.action.keydown or self.slider_has_focus:
            return
        steps = {'ArrowDown': 1, 'ArrowRight': 1, 'ArrowUp': -1, 'ArrowLeft': -1,
                 'PageDown': PAGE_STEP, 'PageUp': -PAGE_STEP}
        if event.key.name in steps:
            self._move(steps[event.key.name])
        elif event.key.name == 'Home':
            self._go_to(0)
        elif event.key.name == 'End':
            self._go_to(self.current.frame_count - 1)

    def _highlight_preset(self) -> None:
        """Fill the button of the active preset and outline the others; none is filled for a typed window."""
        typed = self.preset is None and self.center_input.value is not None
        for key, button in self.preset_buttons.items():
            button.props(remove='unelevated outline')
            button.props('unelevated' if key == self.preset and not typed else 'outline')

    def _show(self) -> None:
        """Point the image at the slice URL for the current state and update the labels."""
        center, width = self.center_input.value, self.width_input.value
        # A preset's own values in the inputs still count as the preset, so its name stays in the URL.
        has_window = self.preset is None and center is not None and width is not None and width > 0
        self.image.set_source(slice_url(self.examination_id, self.current.id, self.index,
                                        center=center if has_window else None,
                                        width=width if has_window else None, preset=self.preset,
                                        base=self.url_base))
        size = f'{self.zoom * 100:g}%'
        self.image.style(f'width: {size}; height: {size}')
        self.zoom_label.set_text(size)
        self.position_label.set_text(_('Slice {number} of {count}', number=self.index + 1,
                                       count=self.current.frame_count))
