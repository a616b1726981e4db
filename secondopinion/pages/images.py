"""The images part of an examination page: studies, series thumbnails and attached reports."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date

from nicegui import ui

from ..services import studies
from ..services.actors import Actor
from .layout import notify_error, plural


def format_size(size: int) -> str:
    for unit in ('bytes', 'KB', 'MB', 'GB'):
        if size < 1024 or unit == 'GB':
            return f'{size:.0f} {unit}' if unit == 'bytes' else f'{size:.1f} {unit}'
        size /= 1024
    return f'{size} bytes'


def describe_upload(summary: dict) -> str:
    """Describe the commit result of an upload, as the upload route returns it."""
    text = f'{plural(int(summary.get("accepted", 0)), "DICOM image")} added'
    if duplicates := int(summary.get('duplicates', 0)):
        text += f', {duplicates} already uploaded'
    if skipped := int(summary.get('skipped', 0)):
        text += f', {plural(skipped, "other file")} skipped (not DICOM images)'
    return text + '.'


def _study_date(value: date | None) -> str:
    return value.isoformat() if value else 'unknown date'


SEX_WORDS = {'M': 'male', 'F': 'female', 'O': 'other'}


def describe_patient(study: studies.StudySummary) -> str:
    """Return the patient line of a study, such as "Patient: Yılmaz, Şükrü · male · 45 years", or '' without data."""
    sex = SEX_WORDS.get(study.patient_sex, study.patient_sex)
    parts = [part for part in (study.patient_name, sex, study.patient_age) if part]
    return f'Patient: {" · ".join(parts)}' if parts else ''


def _image_links(links: Sequence[str]) -> None:
    """Show the addresses where the patient's images are stored, as the place of the images."""
    with ui.column().classes('w-full gap-1').mark('image-links'):
        ui.label('Images stored elsewhere, at this link:' if len(links) == 1
                 else 'Images stored elsewhere, at these links:').classes('text-body2 text-weight-medium')
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

    if summary.image_count == 0 and not summary.prior_reports and not links:
        ui.label('No images uploaded yet.').classes('text-grey-7').mark('no-images')
    if links and not can_edit:
        _image_links(links)
    if summary.image_count:
        ui.label(f'{plural(summary.study_count, "study", "studies")}, {summary.series_count} series, '
                 f'{plural(summary.image_count, "image")}, {format_size(summary.total_bytes)}') \
            .classes('text-body2 text-weight-medium').mark('image-totals')
    if summary.deidentified:
        ui.label('De-identified review: names, ids, birth dates and addresses are removed from the images you '
                 'view and download. Age and sex are kept.').classes('text-caption text-grey-8').mark('deidentified')
    names = sorted({study.patient_name for study in summary.studies if study.patient_name})
    if len(names) > 1:
        # Hospitals sometimes put several patients' studies on one CD; the doctor needs only this patient's.
        ui.label(f'These images belong to {len(names)} different people: {"; ".join(names)}. '
                 + ('Remove the studies that are not yours before you submit.' if can_edit
                    else 'Check which study the question is about.')) \
            .classes('text-body2 text-warning-strong').mark('several-patients')
    for study in summary.studies:
        with ui.column().classes('w-full gap-1').mark('study'):
            ui.label(f'{study.modality or "?"} study of {_study_date(study.date)}: '
                     f'{study.description or "no description"}').classes('text-subtitle2')
            patient_line = describe_patient(study)
            if patient_line:
                ui.label(patient_line).classes('text-body2').mark('study-patient')
            with ui.row().classes('gap-3'):
                for series in study.series:
                    with ui.card().tight().classes('w-36').mark('series'):
                        if series.has_thumbnail:
                            ui.image(f'/api/exams/{examination_id}/series/{series.id}/thumbnail.png') \
                                .classes('w-36 h-36 bg-black').props('fit=contain alt="Series preview"')
                        else:
                            with ui.element('div').classes('w-36 h-36 bg-grey-9 flex items-center justify-center'):
                                ui.icon('image_not_supported', color='grey-5', size='2rem')
                        with ui.card_section().classes('q-pa-xs'):
                            ui.label(f'#{series.number if series.number is not None else "-"} '
                                     f'{series.description or series.modality}').classes('text-caption ellipsis')
                            if series.body_part:
                                ui.label(series.body_part).classes('text-caption').mark('series-body-part')
                            ui.label(plural(series.image_count, 'image')).classes('text-caption text-grey-7')
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
        ui.button('Remove all images', icon='delete_sweep', on_click=clear).props('flat color=negative') \
            .mark('clear-images')
