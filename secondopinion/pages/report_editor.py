"""The report on screen: the doctor's editor while a case is under review, and the finalized report with addenda."""

from __future__ import annotations

from nicegui import ui

from ..i18n import N_, _
from ..models import Comparison, Role
from ..services import examinations, reports
from ..services.actors import Actor
from ..services.report_templates import templates_for
from .key_images import key_image_list
from .layout import format_time, notify_error

# Labels are marked with N_ and translated where they are shown.
COMPARISON_OPTIONS = {Comparison.AGREES.value: N_('Agrees'), Comparison.PARTLY.value: N_('Partly agrees'),
                      Comparison.DISAGREES.value: N_('Disagrees')}
SECTIONS = (('technique', N_('Technique')), ('findings', N_('Findings')), ('impression', N_('Impression')),
            ('recommendations', N_('Recommendations')))


def report_editor(actor: Actor, exam: examinations.ExamView, report: reports.ReportView | None,
                  has_first_report: bool) -> None:
    """Edit the report of a case under review: sections saved on blur, templates, comparison, finalize."""
    examination_id = exam.id
    templates = {template.name: template for template in templates_for(exam.modality)}
    with ui.row().classes('w-full items-end gap-2'):
        # The template texts stay English clinical text that the doctor edits; only their names are translated.
        chosen = ui.select({name: _(name) for name in templates}, value=next(iter(templates)),
                           label=_('Start from a template')) \
            .classes('min-w-56').mark('template')
        ui.button(_('Fill empty sections'), icon='post_add', on_click=lambda: use_template()).props('outline') \
            .mark('use-template')
    fields = {name: ui.textarea(_(label), value=getattr(report, name) if report else '').classes('w-full')
              .props('autogrow').mark(name) for name, label in SECTIONS}
    comparison = comparison_note = None
    if has_first_report:
        ui.label(_('Compared with the first report the patient uploaded, your opinion:')) \
            .classes('text-subtitle2 q-mt-sm')
        comparison_options = {value: _(label) for value, label in COMPARISON_OPTIONS.items()}
        comparison = ui.radio(comparison_options, value=(report.comparison or None) if report else None) \
            .props('inline').mark('comparison')
        comparison_note = ui.textarea(_('Comparison note'), value=report.comparison_note if report else '',
                                      placeholder=_('What you see differently, and why')) \
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
        filled = [_(label) for name, label in SECTIONS[:3]
                  if not (fields[name].value or '').strip() and getattr(template, name)]
        for name, _label in SECTIONS[:3]:
            if not (fields[name].value or '').strip():
                fields[name].value = getattr(template, name)
        if filled and save_quietly():
            ui.notify(_('{sections} filled from the template "{template}".', sections=', '.join(filled),
                        template=_(template.name)), position='top')
        elif not filled:
            ui.notify(_('Every section already has text; the template changed nothing.'), position='top')

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
        ui.notify(_('Report finalized and sent to the patient.'), type='positive', position='top')
        ui.navigate.reload()

    with ui.dialog() as confirm, ui.card():
        ui.label(_('Finalize and sign this report?')).classes('text-h6')
        ui.label(_('The PDF is signed with your name and license number and sent to the patient. '
                   'It can no longer be changed afterwards; corrections become addenda.'))
        with ui.row().classes('w-full justify-end'):
            ui.button(_('Keep editing'), on_click=confirm.close).props('flat')
            ui.button(_('Finalize and sign'), icon='verified', on_click=finalize).mark('confirm-finalize')

    def release() -> None:
        try:
            examinations.release(actor=actor, examination_id=examination_id)
        except Exception as error:  # noqa: BLE001
            notify_error(error)
            return
        ui.notify(_('The case is back on the pending list.'), position='top')
        ui.navigate.to('/doctor')

    def save() -> None:
        if save_quietly():
            ui.notify(_('Draft saved.'), type='positive', position='top')

    key_image_list(actor, examination_id, editable=True)
    with ui.row().classes('w-full justify-end gap-2'):
        ui.button(_('Release case'), on_click=release).props('flat color=negative').mark('release')
        ui.button(_('Save draft'), on_click=save).props('outline').mark('save-report')
        ui.button(_('Finalize report'), icon='verified', on_click=confirm.open).mark('finalize')


def final_report(actor: Actor, examination_id: str, report: reports.ReportView | None, *, can_amend: bool,
                 deidentified: bool = False) -> None:
    """Show a finalized report with its addenda and PDF versions; the reporting doctor may add an addendum.

    With `deidentified`, the PDF links serve copies with the pseudonym, and the DICOM and FHIR exports,
    which carry the patient's name, are not offered.
    """
    if report is None or not report.is_final:
        ui.label(_('No report was written for this case.'))
        return
    for name, title in SECTIONS:
        text = getattr(report, name)
        if text:
            ui.label(_(title)).classes('text-subtitle1 text-weight-medium q-mt-sm')
            ui.label(text).classes('whitespace-pre-wrap').mark(f'final-{name}')
    if report.comparison:
        ui.label(_('Comparison with the first report')).classes('text-subtitle1 text-weight-medium q-mt-sm')
        label = _(reports.COMPARISON_LABELS.get(Comparison(report.comparison), report.comparison))
        ui.label(f'{label}. {report.comparison_note}'.strip()).classes('whitespace-pre-wrap').mark('final-comparison')
    key_image_list(actor, examination_id, editable=False)
    ui.label(_('By {name}, signed {time}', name=report.doctor_name, time=format_time(report.finalized_at))) \
        .classes('text-caption') \
        .mark('finalized')
    for addendum in report.addenda:
        with ui.card().classes('w-full bg-amber-1 q-mt-sm').mark(f'addendum-{addendum.number}'):
            ui.label(_('Addendum {number}', number=addendum.number)).classes('text-subtitle1 text-weight-medium')
            ui.label(addendum.text).classes('whitespace-pre-wrap')
            ui.label(_('By {name}, signed {time}', name=addendum.doctor_name, time=format_time(addendum.signed_at))) \
                .classes('text-caption')

    with ui.row().classes('items-center gap-2 q-mt-sm'):
        ui.button(_('Download PDF (version {version})', version=report.version) if report.addenda
                  else _('Download PDF report'),
                  icon='picture_as_pdf',
                  on_click=lambda: ui.navigate.to(f'/api/exams/{examination_id}/report.pdf', new_tab=True)) \
            .mark('download-report')
        for version in range(1, report.version):
            ui.link(_('Version {version}', version=version),
                    f'/api/exams/{examination_id}/report.pdf?version={version}',
                    new_tab=True).classes('text-caption').mark(f'report-version-{version}')
    if deidentified:
        ui.label(_('De-identified review: the PDF shows the pseudonym and age. The DICOM and FHIR exports carry '
                   "the patient's name, so they are not offered.")).classes('text-caption text-grey-7') \
            .mark('exports-withheld')
    else:
        with ui.row().classes('items-center gap-3'):
            ui.label(_('For hospital systems:')).classes('text-caption text-grey-7')
            ui.link(_('DICOM (PDF in the study)'), f'/api/exams/{examination_id}/report.dcm') \
                .classes('text-caption').mark('download-report-dicom')
            ui.link(_('FHIR DiagnosticReport (JSON)'), f'/api/exams/{examination_id}/report.fhir.json') \
                .classes('text-caption').mark('download-report-fhir')
    if actor.role == Role.DOCTOR:
        ui.label(_('SHA-256 of the first PDF: {digest}', digest=report.pdf_sha256)).classes('text-caption break-all')
    if can_amend:
        _addendum_form(actor, examination_id)


def _addendum_form(actor: Actor, examination_id: str) -> None:
    with ui.expansion(_('Add an addendum'), icon='edit_note').classes('w-full q-mt-md').mark('addendum-form'):
        ui.label(_('An addendum corrects or adds to the signed report. It gets its own signed PDF; the earlier '
                   'versions stay unchanged, and the patient is told again.')).classes('text-caption')
        text = ui.textarea(_('Addendum')).classes('w-full').props('autogrow').mark('addendum-text')

        def sign() -> None:
            confirm.close()
            try:
                version = reports.add_addendum(actor=actor, examination_id=examination_id, text=text.value or '')
            except Exception as error:  # noqa: BLE001 (domain errors shown, others logged)
                notify_error(error)
                return
            ui.notify(_('Addendum signed: the report is now version {version}.', version=version),
                      type='positive', position='top')
            ui.navigate.reload()

        with ui.dialog() as confirm, ui.card():
            ui.label(_('Sign this addendum?')).classes('text-h6')
            ui.label(_('It is added to the report for good and sent to the patient.'))
            with ui.row().classes('w-full justify-end'):
                ui.button(_('Keep editing'), on_click=confirm.close).props('flat')
                ui.button(_('Sign addendum'), icon='verified', on_click=sign).mark('confirm-addendum')
        ui.button(_('Sign addendum'), icon='verified', on_click=confirm.open).mark('sign-addendum')
