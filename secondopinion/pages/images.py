"""The images part of an examination page: studies, series thumbnails and attached reports."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date

from nicegui import ui

from ..i18n import N_, _, ngettext
from ..services import studies
from ..services.actors import Actor
from .layout import notify_error


def format_size(size: int) -> str:
    for unit in ('bytes', 'KB', 'MB', 'GB'):
        if size < 1024 or unit == 'GB':
            return f'{size:.0f} {unit}' if unit == 'bytes' else f'{size:.1f} {unit}'
        size /= 1024
    return f'{size} bytes'


def describe_upload(summary: dict) -> str:
    """Describe the commit result of an upload, as the upload route returns it."""
    parts = [ngettext('{count} DICOM image added', '{count} DICOM images added', int(summary.get('accepted', 0)))]
    if duplicates := int(summary.get('duplicates', 0)):
        parts.append(ngettext('{count} already uploaded', '{count} already uploaded', duplicates))
    if skipped := int(summary.get('skipped', 0)):
        parts.append(ngettext('{count} other file skipped (not DICOM images)',
                              '{count} other files skipped (not DICOM images)', skipped))
    return ', '.join(parts) + '.'


def _study_date(value: date | None) -> str:
    return value.isoformat() if value else _('unknown date')


SEX_WORDS = {'M': N_('male'), 'F': N_('female'), 'O': N_('other')}


def describe_patient(study: studies.StudySummary) -> str:
    """Return the patient line of a study, such as "Patient: Yılmaz, Şükrü · male · 45 years", or '' without data."""
    sex = _(SEX_WORDS[study.patient_sex]) if study.patient_sex in SEX_WORDS else study.patient_sex
    parts = [part for part in (study.patient_name, sex, study.patient_age) if part]
    return _('Patient: {details}', details=' · '.join(parts)) if parts else ''


def _image_links(links: Sequence[str]) -> None:
    """Show the addresses where the patient's images are stored, as the place of the images."""
    with ui.column().classes('w-full gap-1').mark('image-links'):
        ui.label(ngettext('Images stored elsewhere, at this link:', 'Images stored elsewhere, at these links:',
                          len(links))).classes('text-body2 text-weight-medium')
        for url in links:
            with ui.row().classes('items-center no-wrap gap-2'):
                ui.icon('link').props('aria-hidden=true')
                ui.link(url, url, new_tab=True).classes('break-all').mark('image-link-url')


def images_summary(actor: Actor, examination_id: str, *, can_edit: bool, links: Sequence[str] = (),
                   on_change: Callable[[], None] | None = None) -> None:
    """Show what was uploaded and the `links` to images stored elsewhere.

    With `can_edit`, the patient may remove images and attached reports, and the form lists the links
    itself with their remove buttons, so they are not repeated here.
    """
    try:
        summary = studies.get_study_summary(actor=actor, examination_id=examination_id)
    except Exception as error:  # noqa: BLE001 (domain errors shown, others logged)
        notify_error(error)
        return

    if summary.image_count == 0 and not summary.prior_reports and not summary.prior_reports_withheld and not links:
        ui.label(_('No images uploaded yet.')).classes('text-grey-7').mark('no-images')
    if links and not can_edit:
        _image_links(links)
    if summary.image_count:
        ui.label(', '.join([ngettext('{count} study', '{count} studies', summary.study_count),
                            ngettext('{count} series', '{count} series', summary.series_count),
                            ngettext('{count} image', '{count} images', summary.image_count),
                            format_size(summary.total_bytes)])) \
            .classes('text-body2 text-weight-medium').mark('image-totals')
    if summary.deidentified:
        ui.label(_('De-identified review: names, ids, birth dates and addresses are removed from the images you '
                 'view and download. Age and sex are kept.')).classes('text-caption text-grey-8').mark('deidentified')
    flagged = [series for study in summary.studies for series in study.series if series.burned_in_text]
    if flagged:
        ui.label(ngettext('{count} series may show text burned into the pixels, such as the patient\'s name, which '
                          'de-identification cannot remove. They are marked below, and in the zip download their '
                          'files end in "_BURNED-IN-TEXT.dcm".',
                          '{count} series may show text burned into the pixels, such as the patient\'s name, which '
                          'de-identification cannot remove. They are marked below, and in the zip download their '
                          'files end in "_BURNED-IN-TEXT.dcm".', len(flagged))) \
            .classes('text-body2 text-warning-strong').mark('burned-in-warning')
    names = sorted({study.patient_name for study in summary.studies if study.patient_name})
    if len(names) > 1:
        # Hospitals sometimes put several patients' studies on one CD; the doctor needs only this patient's.
        ui.label(_('These images belong to {count} different people: {names}.', count=len(names),
                   names='; '.join(names)) + ' '
                 + (_('Remove the studies that are not yours before you submit.') if can_edit
                    else _('Check which study the question is about.'))) \
            .classes('text-body2 text-warning-strong').mark('several-patients')
    for study in summary.studies:
        with ui.column().classes('w-full gap-1').mark('study'):
            ui.label(_('{modality} study of {date}: {description}', modality=study.modality or '?',
                       date=_study_date(study.date), description=study.description or _('no description'))) \
                .classes('text-subtitle2')
            patient_line = describe_patient(study)
            if patient_line:
                ui.label(patient_line).classes('text-body2').mark('study-patient')
            preview_text = _('Series preview')
            with ui.row().classes('gap-3'):
                for series in study.series:
                    with ui.card().tight().classes('w-36').mark('series'):
                        if series.has_thumbnail:
                            ui.image(f'/api/exams/{examination_id}/series/{series.id}/thumbnail.png') \
                                .classes('w-36 h-36 bg-black').props(f'fit=contain alt="{preview_text}"')
                        else:
                            with ui.element('div').classes('w-36 h-36 bg-grey-9 flex items-center justify-center'):
                                ui.icon('image_not_supported', color='grey-5', size='2rem')
                        with ui.card_section().classes('q-pa-xs'):
                            ui.label(f'#{series.number if series.number is not None else "-"} '
                                     f'{series.description or series.modality}').classes('text-caption ellipsis')
                            if series.body_part:
                                ui.label(series.body_part).classes('text-caption').mark('series-body-part')
                            ui.label(ngettext('{count} image', '{count} images', series.image_count)).classes('text-caption text-grey-7')
                            if series.burned_in_text:
                                with ui.row().classes('items-center gap-1 no-wrap').mark(f'burned-in-{series.id}') \
                                        .tooltip(series.burned_in_text):
                                    ui.icon('warning', color='warning')
                                    ui.label(_('Burned-in text')).classes('text-caption text-warning-strong')
    if summary.prior_reports_withheld:
        ui.label(ngettext('Prior reports are hidden in de-identified review ({count} file from the patient), because '
                          'they show the patient\'s name. Ask the admin if you need them.',
                          'Prior reports are hidden in de-identified review ({count} files from the patient), because '
                          'they show the patient\'s name. Ask the admin if you need them.',
                          summary.prior_reports_withheld)) \
            .classes('text-body2 text-grey-8').mark('prior-reports-withheld')
    for report_file in summary.prior_reports:
        with ui.row().classes('items-center gap-2').mark('prior-report-file'):
            ui.icon('description')
            ui.link(report_file.name, f'/api/exams/{examination_id}/prior-report/{report_file.id}', new_tab=True)
            ui.label(format_size(report_file.size)).classes('text-caption text-grey-7')
            if can_edit:
                def remove(file_id: int = report_file.id) -> None:
                    try:
                        studies.remove_file(actor=actor, examination_id=examination_id, file_id=file_id)
                    except Exception as error:  # noqa: BLE001
                        notify_error(error)
                    if on_change:
                        on_change()
                ui.button(icon='delete', on_click=remove).props('flat dense round aria-label="Remove report file"')

    if can_edit and summary.image_count:
        def clear() -> None:
            try:
                studies.clear_images(actor=actor, examination_id=examination_id)
            except Exception as error:  # noqa: BLE001
                notify_error(error)
            if on_change:
                on_change()
        ui.button(_('Remove all images'), icon='delete_sweep', on_click=clear).props('flat color=negative') \
            .mark('clear-images')
