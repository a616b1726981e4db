"""The report on screen: the doctor's editor while a case is under review, and the finalized report with addenda."""

from __future__ import annotations

from nicegui import ui

from ..models import Comparison, Role
from ..services import examinations, reports
from ..services.actors import Actor
from ..services.report_templates import templates_for
from .key_images import key_image_list
from .layout import format_time, notify_error

COMPARISON_OPTIONS = {Comparison.AGREES.value: 'Agrees', Comparison.PARTLY.value: 'Partly agrees',
                      Comparison.DISAGREES.value: 'Disagrees'}
SECTIONS = (('technique', 'Technique'), ('findings', 'Findings'), ('impression', 'Impression'),
            ('recommendations', 'Recommendations'))


def report_editor(actor: Actor, exam: examinations.ExamView, report: reports.ReportView | None,
                  has_first_report: bool) -> None:
    """Edit the report of a case under review: sections saved on blur, templates, comparison, finalize."""
    examination_id = exam.id
    templates = {template.name: template for template in templates_for(exam.modality)}
    with ui.row().classes('w-full items-end gap-2'):
        chosen = ui.select(list(templates), value=next(iter(templates)), label='Start from a template') \
            .classes('min-w-56').mark('template')
        ui.button('Fill empty sections', icon='post_add', on_click=lambda: use_template()).props('outline') \
            .mark('use-template')
    fields = {name: ui.textarea(label, value=getattr(report, name) if report else '').classes('w-full')
              .props('autogrow').mark(name) for name, label in SECTIONS}
    comparison = comparison_note = None
    if has_first_report:
        ui.label('Compared with the first report the patient uploaded, your opinion:') \
            .classes('text-subtitle2 q-mt-sm')
        comparison = ui.radio(COMPARISON_OPTIONS, value=(report.comparison or None) if report else None) \
            .props('inline').mark('comparison')
        comparison_note = ui.textarea('Comparison note', value=report.comparison_note if report else '',
                                      placeholder='What you see differently, and why') \
            .classes('w-full').props('autogrow').mark('comparison_note')

    def values() -> dict[str, str | None]:
        result: dict[str, str | None] = {name: field.value or '' for name, field in fields.items()}
        if comparison is not None and comparison_note is not None:
            result['comparison'] = comparison.value or ''
            result['comparison_note'] = comparison_note.value or ''
        return result

    def save_quietly() -> bool:
        try:
            reports.save_draft(actor=actor, examination_id=examination_id, **values())
        except Exception as error:  # noqa: BLE001 (domain errors shown, others logged)
            notify_error(error)
            return False
        return True

    def use_template() -> None:
        template = templates[chosen.value]
        filled = [label for name, label in SECTIONS[:3]
                  if not (fields[name].value or '').strip() and getattr(template, name)]
        for name, _label in SECTIONS[:3]:
            if not (fields[name].value or '').strip():
                fields[name].value = getattr(template, name)
        if filled and save_quietly():
            ui.notify(f'{", ".join(filled)} filled from the template "{template.name}".', position='top')
        elif not filled:
            ui.notify('Every section already has text; the template changed nothing.', position='top')

    # Each section is saved when it loses focus, so a lost connection costs at most one section's edit.
    for field in fields.values():
        field.on('blur', save_quietly)
    if comparison is not None and comparison_note is not None:
        comparison.on_value_change(save_quietly)
        comparison_note.on('blur', save_quietly)

    def finalize() -> None:
        confirm.close()
        try:
            reports.finalize(actor=actor, examination_id=examination_id, **values())
        except Exception as error:  # noqa: BLE001 (domain errors shown, others logged)
            notify_error(error)
            return
        ui.notify('Report finalized and sent to the patient.', type='positive', position='top')
        ui.navigate.reload()

    with ui.dialog() as confirm, ui.card():
        ui.label('Finalize and sign this report?').classes('text-h6')
        ui.label('The PDF is signed with your name and license number and sent to the patient. '
                 'It can no longer be changed afterwards; corrections become addenda.')
        with ui.row().classes('w-full justify-end'):
            ui.button('Keep editing', on_click=confirm.close).props('flat')
            ui.button('Finalize and sign', icon='verified', on_click=finalize).mark('confirm-finalize')

    def release() -> None:
        try:
            examinations.release(actor=actor, examination_id=examination_id)
        except Exception as error:  # noqa: BLE001
            notify_error(error)
            return
        ui.notify('The case is back on the pending list.', position='top')
        ui.navigate.to('/doctor')

    def save() -> None:
        if save_quietly():
            ui.notify('Draft saved.', type='positive', position='top')

    key_image_list(actor, examination_id, editable=True)
    with ui.row().classes('w-full justify-end gap-2'):
        ui.button('Release case', on_click=release).props('flat color=negative').mark('release')
        ui.button('Save draft', on_click=save).props('outline').mark('save-report')
        ui.button('Finalize report', icon='verified', on_click=confirm.open).mark('finalize')


def final_report(actor: Actor, examination_id: str, report: reports.ReportView | None, *, can_amend: bool,
                 deidentified: bool = False) -> None:
    """Show a finalized report with its addenda and PDF versions; the reporting doctor may add an addendum.

    With `deidentified`, the PDF links serve copies with the pseudonym, and the DICOM and FHIR exports,
    which carry the patient's name, are not offered.
    """
    if report is None or not report.is_final:
        ui.label('No report was written for this case.')
        return
    for name, title in SECTIONS:
        text = getattr(report, name)
        if text:
            ui.label(title).classes('text-subtitle1 text-weight-medium q-mt-sm')
            ui.label(text).classes('whitespace-pre-wrap').mark(f'final-{name}')
    if report.comparison:
        ui.label('Comparison with the first report').classes('text-subtitle1 text-weight-medium q-mt-sm')
        label = reports.COMPARISON_LABELS.get(Comparison(report.comparison), report.comparison)
        ui.label(f'{label}. {report.comparison_note}'.strip()).classes('whitespace-pre-wrap').mark('final-comparison')
    key_image_list(actor, examination_id, editable=False)
    ui.label(f'By {report.doctor_name}, signed {format_time(report.finalized_at)}').classes('text-caption') \
        .mark('finalized')
    for addendum in report.addenda:
        with ui.card().classes('w-full bg-amber-1 q-mt-sm').mark(f'addendum-{addendum.number}'):
            ui.label(f'Addendum {addendum.number}').classes('text-subtitle1 text-weight-medium')
            ui.label(addendum.text).classes('whitespace-pre-wrap')
            ui.label(f'By {addendum.doctor_name}, signed {format_time(addendum.signed_at)}').classes('text-caption')

    with ui.row().classes('items-center gap-2 q-mt-sm'):
        ui.button(f'Download PDF (version {report.version})' if report.addenda else 'Download PDF report',
                  icon='picture_as_pdf',
                  on_click=lambda: ui.navigate.to(f'/api/exams/{examination_id}/report.pdf', new_tab=True)) \
            .mark('download-report')
        for version in range(1, report.version):
            ui.link(f'Version {version}', f'/api/exams/{examination_id}/report.pdf?version={version}',
                    new_tab=True).classes('text-caption').mark(f'report-version-{version}')
    if deidentified:
        ui.label('De-identified review: the PDF shows the pseudonym and age. The DICOM and FHIR exports carry the '
                 "patient's name, so they are not offered.").classes('text-caption text-grey-7') \
            .mark('exports-withheld')
    else:
        with ui.row().classes('items-center gap-3'):
            ui.label('For hospital systems:').classes('text-caption text-grey-7')
            ui.link('DICOM (PDF in the study)', f'/api/exams/{examination_id}/report.dcm') \
                .classes('text-caption').mark('download-report-dicom')
            ui.link('FHIR DiagnosticReport (JSON)', f'/api/exams/{examination_id}/report.fhir.json') \
                .classes('text-caption').mark('download-report-fhir')
    if actor.role == Role.DOCTOR:
        ui.label(f'SHA-256 of the first PDF: {report.pdf_sha256}').classes('text-caption break-all')
    if can_amend:
        _addendum_form(actor, examination_id)


def _addendum_form(actor: Actor, examination_id: str) -> None:
    with ui.expansion('Add an addendum', icon='edit_note').classes('w-full q-mt-md').mark('addendum-form'):
        ui.label('An addendum corrects or adds to the signed report. It gets its own signed PDF; the earlier '
                 'versions stay unchanged, and the patient is told again.').classes('text-caption')
        text = ui.textarea('Addendum').classes('w-full').props('autogrow').mark('addendum-text')

        def sign() -> None:
            confirm.close()
            try:
                version = reports.add_addendum(actor=actor, examination_id=examination_id, text=text.value or '')
            except Exception as error:  # noqa: BLE001 (domain errors shown, others logged)
                notify_error(error)
                return
            ui.notify(f'Addendum signed: the report is now version {version}.', type='positive', position='top')
            ui.navigate.reload()

        with ui.dialog() as confirm, ui.card():
            ui.label('Sign this addendum?').classes('text-h6')
            ui.label('It is added to the report for good and sent to the patient.')
            with ui.row().classes('w-full justify-end'):
                ui.button('Keep editing', on_click=confirm.close).props('flat')
                ui.button('Sign addendum', icon='verified', on_click=sign).mark('confirm-addendum')
        ui.button('Sign addendum', icon='verified', on_click=confirm.open).mark('sign-addendum')
