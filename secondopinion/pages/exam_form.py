"""The new-examination form: a stepper with the steps images, details, review and payment.

Every step change saves the details to the draft, and the address keeps the open step
(`?step=details`), so going back or reloading the page keeps what the patient entered.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

from nicegui import events, run, ui
from nicegui.elements.mixins.value_element import ValueElement

from ..config import get_settings
from ..i18n import N_, _, error_message, ngettext
from ..services import drafts, examinations, payments, studies
from ..services.actors import Actor
from ..services.errors import DomainError, ValidationError
from ..services.payments import format_money
from .account import payment_blocked_note
from .images import describe_upload, images_summary
from .layout import notify_error
from .study_uploader import StudyUploader

logger = logging.getLogger(__name__)

STEP_TITLES = {
    drafts.STEP_IMAGES: (N_('Images'), 'image'),
    drafts.STEP_DETAILS: (N_('Details'), 'edit_note'),
    drafts.STEP_REVIEW: (N_('Review'), 'fact_check'),
    drafts.STEP_PAYMENT: (N_('Payment'), 'payment'),
}
SAVE_WHILE_TYPING_SECONDS = 2.0
# Event that the page sends through its socket when it is hidden or left, so the server saves text typed
# since the last throttled save. A page closed at once loses its socket first; then the disconnect saves.
PAGE_HIDDEN_EVENT = 'draft_page_hidden'
PAGE_HIDDEN_SCRIPT = f"""<script>
(() => {{
  const send = () => {{ try {{ emitEvent('{PAGE_HIDDEN_EVENT}'); }} catch (error) {{}} }};
  document.addEventListener('visibilitychange', () => {{ if (document.visibilityState === 'hidden') send(); }});
  window.addEventListener('pagehide', send);
}})();
</script>"""
URGENCY_LABELS = {'routine': N_('Routine'), 'urgent': N_('Urgent (reviewed first, costs more)')}
# "Back to images" and so on, by the step that the button opens.
BACK_LABELS = {drafts.STEP_IMAGES: N_('Back to images'), drafts.STEP_DETAILS: N_('Back to details'),
               drafts.STEP_REVIEW: N_('Back to review'), drafts.STEP_PAYMENT: N_('Back to payment')}

# Quasar indents the content of a vertical stepper by 60 px, which leaves too little width on phones. There
# the content uses the full width, so the line that joins the step dots would cross it and is hidden.
STEPPER_CSS = '''
@media (max-width: 599px) {
  .exam-stepper .q-stepper__step-inner { padding: 0 8px 24px 8px; }
  .exam-stepper .q-stepper__tab { padding: 12px 8px; }
  .exam-stepper .q-stepper__dot:before, .exam-stepper .q-stepper__dot:after { display: none; }
}
'''


class CompletionStepper(ui.stepper):
    """A stepper whose header ticks the form sets from what the draft still needs.

    NiceGUI's stepper ticks every step before the open one after each step change, so a step that the
    patient only passed through would look complete.
    """

    def _handle_value_change(self, value: Any) -> None:
        # NOTE: skips ui.stepper's own override (NiceGUI 3.18), which only sets the `done` props.
        ValueElement._handle_value_change(self, value)


class ExamForm:
    """The stepper of one draft examination. It keeps the widgets, so any step can save the details."""

    def __init__(self, actor: Actor, exam: examinations.ExamView, step: str) -> None:
        self.actor = actor
        self.examination_id = exam.id
        self.exam = exam
        progress = drafts.draft_progress(actor=actor, examination_id=exam.id)
        self.initial_step = step if step in drafts.STEPS else progress.first_open_step

    # --- building ------------------------------------------------------------------------------

    def build(self) -> None:
        ui.add_css(STEPPER_CSS)
        ui.label(_('New examination')).classes('text-h5')
        with CompletionStepper(value=self.initial_step, on_value_change=self._step_changed) \
                .props('vertical header-nav flat').classes('w-full exam-stepper').mark('exam-stepper') as stepper:
            self.stepper = stepper
            self.steps: dict[str, ui.step] = {}
            with self._step(drafts.STEP_IMAGES):
                self._images_step()
            with self._step(drafts.STEP_DETAILS):
                self._details_step()
            with self._step(drafts.STEP_REVIEW):
                self.review = ui.refreshable(self._review_content)
                self.review()
            with self._step(drafts.STEP_PAYMENT):
                self.payment = ui.refreshable(self._payment_content)
                self.payment()
        self._mark_complete_steps()
        self._saved_details = self._details()
        ui.on(PAGE_HIDDEN_EVENT, lambda: self._flush('page hidden'))
        ui.context.client.on_disconnect(lambda: self._flush('connection closed'))
        ui.add_body_html(PAGE_HIDDEN_SCRIPT)

        with ui.row().classes('w-full justify-end gap-2'):
            ui.button(_('Discard'), on_click=self._discard).props('flat color=negative').mark('discard')
            ui.button(_('Save draft'), on_click=self._save_draft).props('outline').mark('save-draft')

    def _step(self, name: str) -> ui.step:
        title, icon = STEP_TITLES[name]
        step = ui.step(name, title=_(title), icon=icon).mark(f'step-{name}')
        self.steps[name] = step
        return step

    def _mark_complete_steps(self) -> None:
        """Tick the images and details steps when nothing they ask for is missing, and the review when nothing is.

        The payment step is never ticked, because the draft is paid on the checkout page after the form.
        """
        progress = self._progress()
        if progress is None:
            return
        done = {drafts.STEP_IMAGES: not progress.missing_in(drafts.STEP_IMAGES),
                drafts.STEP_DETAILS: not progress.missing_in(drafts.STEP_DETAILS),
                drafts.STEP_REVIEW: progress.complete,
                drafts.STEP_PAYMENT: False}
        for name, step in self.steps.items():
            if step.props.get('done') != done[name]:
                step.props['done'] = done[name]

    def _navigation(self, name: str, back: str | None, forward_label: str, forward: Any) -> None:
        """Add the step's buttons: forward (marked "NAME-next") and, unless `back` is None, back to that step."""
        with ui.stepper_navigation().classes('gap-2 q-px-none'):
            ui.button(forward_label, on_click=forward).mark(f'{name}-next')
            if back is not None:
                ui.button(_(BACK_LABELS[back]), on_click=lambda: self.go(back)) \
                    .props('flat').mark(f'{name}-back')

    def _images_step(self) -> None:
        ui.label(_('Upload the DICOM files of your study: the files, the whole folder of the CD, or one .zip '
                 'of it. You can also give a link to images stored elsewhere.')).classes('text-body2')

        StudyUploader(self.examination_id, concurrency=get_settings().upload_concurrency,
                      on_uploaded=self._uploaded, on_failed=self._upload_failed).classes('w-full').mark('image-upload')
        self.upload_status = ui.label('').classes('text-body2').mark('upload-status')
        self.rejected_files = ui.column().classes('w-full gap-1').mark('rejected-files')
        self.recognized = ui.refreshable(self._recognized_content)
        self.recognized()
        self.image_list = ui.refreshable(self._image_list_content)
        self.image_list()
        self._link_form()
        self._prior_report_form()

        self.images_error = ui.label('').classes('text-body2 text-negative').mark('images-error')
        self._navigation(drafts.STEP_IMAGES, None, _('Continue to details'), self._images_done)

    def _recognized_content(self) -> None:
        """Show the type, body part, date, series count and image count that each study's DICOM headers contain."""
        try:
            progress = drafts.draft_progress(actor=self.actor, examination_id=self.examination_id)
        except Exception as error:  # noqa: BLE001 (domain errors shown, others logged)
            notify_error(error)
            return
        if not progress.recognized:
            return
        with ui.card().classes('w-full bg-green-1').props('flat').mark('recognized'):
            ui.label(_('Recognized in your images')).classes('text-subtitle2')
            for study in progress.recognized:
                parts = [study.modality or _('Unknown type'), ', '.join(study.body_parts) or _('body part not stated'),
                         study.date or _('no study date'),
                         ngettext('{count} series', '{count} series', study.series_count),
                         ngettext('{count} image', '{count} images', study.image_count)]
                ui.label(' · '.join(parts)).classes('text-body2').mark('recognized-study')

    def _image_list_content(self) -> None:
        try:
            current = examinations.get_exam(actor=self.actor, examination_id=self.examination_id)
        except Exception as error:  # noqa: BLE001 (domain errors shown, others logged)
            notify_error(error)
            return
        images_summary(self.actor, self.examination_id, can_edit=True, on_change=self._images_changed,
                       links=[url for _link_id, url, _note in current.links])

    def _link_form(self) -> None:
        with ui.row().classes('w-full items-end gap-2'):
            self.link_url = ui.input(_('Link to images'), placeholder=_('https://... (a portal or cloud share)')) \
                .classes('grow').mark('link-url')
            ui.button(_('Add link'), on_click=self._add_link).props('outline').mark('add-link')
        self.links = ui.refreshable(self._links_content)
        self.links()

    def _links_content(self) -> None:
        current = examinations.get_exam(actor=self.actor, examination_id=self.examination_id)
        for link_id, url, _note in current.links:
            with ui.row().classes('w-full items-center no-wrap gap-2').mark('image-link'):
                ui.icon('link')
                ui.label(url).classes('break-all')
                ui.button(icon='delete', on_click=lambda link_id=link_id: self._remove_link(link_id)) \
                    .props('flat dense round aria-label="Remove link"').mark('remove-link')

    def _prior_report_form(self) -> None:
        with ui.expansion(_('First radiologist\'s report (optional)'), icon='description').classes('w-full') \
                .props('dense'):
            ui.label(_('If you already have a report, paste its text or upload it as PDF or image.')) \
                .classes('text-body2')
            self.prior_text = ui.textarea(_('Text of the first report'), value=self.exam.prior_report_text) \
                .classes('w-full').mark('prior_report_text')
            # NOTE: max_file_size is checked by the browser only; add_prior_report_file checks it again.
            ui.upload(label=_('Report as PDF or image'), auto_upload=True, on_upload=self._prior_uploaded,
                      max_file_size=studies.MAX_PRIOR_REPORT_BYTES, on_rejected=self._prior_too_large) \
                .props('accept=".pdf,.png,.jpg,.jpeg"').classes('w-full').mark('prior-upload')

    def _details_step(self) -> None:
        exam = self.exam
        self.modality = ui.select({code: _(label) for code, label in examinations.MODALITIES.items()}, label=_('Type of examination'),
                                  value=exam.modality or None).classes('w-full').mark('modality')
        self.body_part = ui.input(_('Body part'), value=exam.body_part, placeholder=_('e.g. chest, left knee')) \
            .classes('w-full').mark('body_part')
        self.question = ui.textarea(_('Your question for the radiologist'), value=exam.clinical_question) \
            .classes('w-full').mark('clinical_question')
        self.history = ui.textarea(_('Relevant history'), value=exam.history,
                                   placeholder=_('Symptoms, operations, earlier findings')).classes('w-full') \
            .mark('history')
        ui.label(_('Urgency')).classes('text-caption text-grey-8')
        self.urgency = ui.radio({key: _(label) for key, label in URGENCY_LABELS.items()}, value=exam.urgency).props('inline').mark('urgency')
        self.fields: dict[str, Any] = {'modality': self.modality, 'body_part': self.body_part,
                                       'clinical_question': self.question, 'history': self.history,
                                       'urgency': self.urgency, 'prior_report_text': self.prior_text}
        for field in (self.body_part, self.question, self.history, self.prior_text):
            field.on('blur', self.save)
            # While the patient types, the browser sends this event at most every SAVE_WHILE_TYPING_SECONDS
            # (NiceGUI's throttle), so a page closed before the field lost focus loses only the last seconds.
            field.on('update:model-value', self.save, throttle=SAVE_WHILE_TYPING_SECONDS, leading_events=False)
        for choice in (self.modality, self.urgency):
            choice.on_value_change(self.save)
        for field in self.fields.values():
            field.on_value_change(lambda event: self._clear_error(event.sender))
        self._navigation(drafts.STEP_DETAILS, drafts.STEP_IMAGES, _('Continue to review'), self._details_done)

    def _review_content(self) -> None:
        try:
            exam = examinations.get_exam(actor=self.actor, examination_id=self.examination_id)
            progress = drafts.draft_progress(actor=self.actor, examination_id=self.examination_id)
        except Exception as error:  # noqa: BLE001 (domain errors shown, others logged)
            notify_error(error)
            return

        if progress.missing:
            with ui.column().classes('w-full gap-1').mark('review-missing'):
                ui.label(_('Still missing before you can pay:')).classes('text-body2 text-negative')
                for item in progress.missing:
                    ui.label(f'• {_(item.message)}').classes('text-body2 text-negative')

        with self._review_section(_('Images'), drafts.STEP_IMAGES):
            totals = ngettext('{count} DICOM image', '{count} DICOM images', progress.image_count) \
                if progress.image_count else _('No images uploaded')
            ui.label(totals).classes('text-body2').mark('review-image-count')
            for study in progress.recognized:
                ui.label(' · '.join(part for part in (study.modality, ', '.join(study.body_parts), study.date)
                                    if part)).classes('text-body2 text-grey-8')
            for _link_id, url, _note in exam.links:
                ui.label(url).classes('text-body2 break-all')

        with self._review_section(_('Details'), drafts.STEP_DETAILS):
            _review_row(N_('Type'), _(examinations.MODALITIES.get(exam.modality, exam.modality)))
            _review_row(N_('Body part'), exam.body_part)
            _review_row(N_('Question'), exam.clinical_question)
            _review_row(N_('History'), exam.history)
            _review_row(N_('Urgency'), _(URGENCY_LABELS.get(exam.urgency, exam.urgency)))
            _review_row(N_('First report'), exam.prior_report_text)

        _price_lines(progress.quote, exam.urgency)
        self._navigation(drafts.STEP_REVIEW, drafts.STEP_DETAILS, _('Continue to payment'), self._review_done)

    def _review_section(self, title: str, step: str) -> ui.card:
        card = ui.card().classes('w-full').props('flat bordered').mark(f'review-{step}')
        with card:
            with ui.row().classes('w-full items-center justify-between no-wrap'):
                ui.label(title).classes('text-subtitle1 text-weight-medium')
                ui.button(_('Edit'), icon='edit', on_click=lambda: self.go(step)).props('flat dense') \
                    .mark(f'edit-{step}')
        return card

    def _payment_content(self) -> None:
        try:
            exam = examinations.get_exam(actor=self.actor, examination_id=self.examination_id)
        except Exception as error:  # noqa: BLE001 (domain errors shown, others logged)
            notify_error(error)
            return
        _price_lines(drafts.quote(exam.modality, exam.urgency), exam.urgency)
        ui.label(_('You pay on the next page. Your request goes to our radiologists as soon as the payment is '
                 'confirmed.')).classes('text-body2')
        payment_blocked_note(self.actor)
        with ui.stepper_navigation().classes('gap-2 q-px-none'):
            ui.button(_('Submit and pay'), icon='payment', on_click=self._submit).mark('submit')
            ui.button(_('Back to review'), on_click=lambda: self.go(drafts.STEP_REVIEW)).props('flat') \
                .mark('payment-back')

    # --- actions -------------------------------------------------------------------------------

    def go(self, step: str) -> None:
        """Open a step; the stepper's change handler saves the details."""
        self.stepper.value = step

    def _step_changed(self, event: events.ValueChangeEventArguments) -> None:
        step = event.value if event.value in drafts.STEPS else drafts.STEP_IMAGES
        self.save()
        # replaceState, not pushState, so the browser's back button leaves the form instead of stepping through it.
        ui.navigate.history.replace(f'/exams/{self.examination_id}/edit?step={step}')
        if step in {drafts.STEP_REVIEW, drafts.STEP_PAYMENT}:
            self.review.refresh()
            self.payment.refresh()

    def _details(self) -> dict[str, str]:
        """Return the values of the detail fields as `examinations.update_details` takes them."""
        return {'modality': self.modality.value or '', 'body_part': self.body_part.value or '',
                'clinical_question': self.question.value or '', 'history': self.history.value or '',
                'urgency': self.urgency.value or 'routine', 'prior_report_text': self.prior_text.value or ''}

    def save(self) -> bool:
        """Store the details of the draft. Runs on every step change, when a field loses focus and while typing."""
        details = self._details()
        try:
            examinations.update_details(actor=self.actor, examination_id=self.examination_id, **details)
        except ValidationError as error:
            self._show_field_error(error.field, error_message(error))
            notify_error(error)
            return False
        except Exception as error:  # noqa: BLE001 (domain errors shown, others logged)
            notify_error(error)
            return False
        self._saved_details = details
        self._mark_complete_steps()
        return True

    def _flush(self, reason: str) -> None:
        """Save text typed since the last save, when the page is hidden or its connection closed.

        The patient may have left the page, so a failure is logged and not shown.
        """
        details = self._details()
        if details == self._saved_details:
            return
        try:
            examinations.update_details(actor=self.actor, examination_id=self.examination_id, **details)
        except DomainError as error:
            # Typically a draft submitted or discarded meanwhile, or a value still being typed that is too long.
            # The message may quote what the patient typed, so only its kind and field are logged.
            logger.info('draft %s not saved after %s: %s (field %s)', self.examination_id, reason,
                        type(error).__name__, getattr(error, 'field', None))
            return
        except Exception:  # noqa: BLE001 (logged; the page may be gone)
            logger.exception('saving draft %s after %s failed', self.examination_id, reason)
            return
        self._saved_details = details
        logger.info('draft %s saved after %s', self.examination_id, reason)

    def _save_draft(self) -> None:
        if self.save():
            ui.notify(_('Draft saved.'), type='positive', position='top')

    def _images_done(self) -> None:
        progress = self._progress()
        if progress is None:
            return
        missing = progress.missing_in(drafts.STEP_IMAGES)
        self.images_error.text = _(missing[0].message) if missing else ''
        if not missing:
            self.go(drafts.STEP_DETAILS)

    def _details_done(self) -> None:
        if not self.save():
            return
        progress = self._progress()
        if progress is None:
            return
        missing = progress.missing_in(drafts.STEP_DETAILS)
        for item in missing:
            self._show_field_error(item.field, _(item.message))
        if not missing:
            self.go(drafts.STEP_REVIEW)

    def _review_done(self) -> None:
        progress = self._progress()
        if progress is None:
            return
        if progress.complete:
            self.go(drafts.STEP_PAYMENT)
            return
        # Open the first step with a gap and show the messages on its fields.
        for item in progress.missing:
            self._show_field_error(item.field, _(item.message))
        self.images_error.text = next((_(item.message) for item in progress.missing_in(drafts.STEP_IMAGES)), '')
        self.go(next(step for step in drafts.STEPS if progress.missing_in(step)))

    def _progress(self) -> drafts.DraftProgress | None:
        try:
            return drafts.draft_progress(actor=self.actor, examination_id=self.examination_id)
        except Exception as error:  # noqa: BLE001 (domain errors shown, others logged)
            notify_error(error)
            return None

    def _show_field_error(self, field_name: str | None, message: str) -> None:
        field = self.fields.get(field_name or '')
        if field is None:
            return
        # Item assignment, not the props string, because messages contain quotes.
        field.props['error'] = True
        field.props['error-message'] = message
        field.update()

    def _clear_error(self, field: Any) -> None:
        if field.props.get('error'):
            field.props['error'] = False
            field.props['error-message'] = None
            field.update()

    def _submit(self) -> None:
        if not self.save():
            return
        try:
            examinations.submit(actor=self.actor, examination_id=self.examination_id)
            url = payments.start_checkout(actor=self.actor, examination_id=self.examination_id)
        except Exception as error:  # noqa: BLE001 (domain errors shown, others logged)
            notify_error(error)
            return
        logger.info('examination %s submitted from the form; opening the checkout', self.examination_id)
        ui.navigate.to(url)

    def _discard(self) -> None:
        try:
            examinations.cancel(actor=self.actor, examination_id=self.examination_id)
        except Exception as error:  # noqa: BLE001 (domain errors shown, others logged)
            notify_error(error)
            return
        ui.navigate.to('/exams')

    # --- images --------------------------------------------------------------------------------

    def _uploaded(self, summary: dict) -> None:
        self.upload_status.text = describe_upload(summary)
        self.upload_status.classes(replace='text-body2 text-positive')
        self.rejected_files.clear()
        if self._suggest_from_images():
            self.save()
        self._images_changed()

    def _upload_failed(self, message: str, files: list[tuple[str, str]]) -> None:
        # The message stays in the status line next to the upload; a toast would cover the page.
        self.upload_status.text = message
        self.upload_status.classes(replace='text-body2 text-negative')
        self.rejected_files.clear()
        with self.rejected_files:
            for name, reason in files:
                with ui.row().classes('w-full items-start no-wrap gap-2').mark('rejected-file'):
                    ui.icon('error_outline', color='negative').classes('q-mt-xs')
                    with ui.column().classes('gap-0 min-w-0'):
                        if name:
                            ui.label(name).classes('text-body2 text-weight-medium break-all')
                        ui.label(reason).classes('text-caption text-grey-9')

    def _images_changed(self) -> None:
        self.images_error.text = ''
        self.image_list.refresh()
        self.recognized.refresh()
        self._mark_complete_steps()

    def _suggest_from_images(self) -> bool:
        """Fill the examination type and body part from the uploaded images where the patient left them empty.

        Returns True when a field changed, so the caller saves the draft.
        """
        modality, body_part = examinations.suggest_details(actor=self.actor, examination_id=self.examination_id)
        changed = False
        if not self.modality.value and modality:
            self.modality.value = modality
            changed = True
        if not (self.body_part.value or '').strip() and body_part:
            self.body_part.value = body_part
            changed = True
        return changed

    def _add_link(self) -> None:
        try:
            examinations.add_link(actor=self.actor, examination_id=self.examination_id,
                                  url=self.link_url.value or '')
        except Exception as error:  # noqa: BLE001 (domain errors shown, others logged)
            notify_error(error)
            return
        self.link_url.value = ''
        self.images_error.text = ''
        self.links.refresh()
        self.image_list.refresh()
        self._mark_complete_steps()

    def _remove_link(self, link_id: int) -> None:
        try:
            examinations.remove_link(actor=self.actor, examination_id=self.examination_id, link_id=link_id)
        except Exception as error:  # noqa: BLE001 (domain errors shown, others logged)
            notify_error(error)
        self.links.refresh()
        self.image_list.refresh()
        self._mark_complete_steps()

    async def _prior_uploaded(self, event: events.UploadEventArguments) -> None:
        folder = Path(tempfile.mkdtemp(prefix='prior-'))
        try:
            path = folder / 'report'
            await event.file.save(path)
            await run.io_bound(studies.add_prior_report_file, actor=self.actor, examination_id=self.examination_id,
                               filename=event.file.name, path=path)
            ui.notify(_('{name} attached.', name=event.file.name), type='positive', position='top')
        except Exception as error:  # noqa: BLE001 (domain errors shown, others logged)
            notify_error(error)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
            event.sender.reset()
        self.image_list.refresh()

    def _prior_too_large(self) -> None:
        ui.notify(_('The report file is larger than {size}. Upload a smaller PDF or photo.',
                    size=studies.format_bytes(studies.MAX_PRIOR_REPORT_BYTES)), type='negative', position='top')


def _review_row(label: str, value: str) -> None:
    """Add a row of the review; `label` is the English msgid, which also names the row's marker."""
    with ui.row().classes('w-full no-wrap gap-2'):
        ui.label(_(label)).classes('text-grey-7 w-24 shrink-0')
        ui.label(value or '-').classes('whitespace-pre-wrap break-words min-w-0').mark(f'review-{label.lower()}')


def _price_lines(quote: drafts.PriceQuote, urgency: str) -> None:
    with ui.column().classes('w-full gap-0').mark('price'):
        if quote.price_cents is None:
            ui.label(_('Choose the type of examination to see the price.')).classes('text-body2')
            return
        ui.label(_('Price: {amount}', amount=format_money(quote.price_cents, quote.currency))) \
            .classes('text-subtitle1 text-weight-medium').mark('price-total')
        if urgency == 'urgent':
            ui.label(_('{amount} plus {percent} % for an urgent review.',
                       amount=format_money(quote.routine_cents, quote.currency),
                       percent=quote.urgent_surcharge_percent)).classes('text-caption text-grey-8')
