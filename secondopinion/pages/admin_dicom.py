"""Admin panel parts for de-identified review and DICOM exchange: nodes, the app-wide switch, sending a study."""

from __future__ import annotations

from collections.abc import Callable

from nicegui import ui

from ..i18n import N_, _
from ..services import dicom_nodes, dicom_send, review_policy
from ..services.actors import Actor
from ..services.errors import DomainError
from ..services.examinations import ExamView
from .layout import format_time, notify_error, show_form_error

# Labels are marked with N_ and translated where they are shown.
DEIDENTIFY_CHOICES = {'follow': N_('Follow the app-wide setting'), 'on': N_('De-identified for doctors'),
                      'off': N_('Originals for doctors')}
CHOICE_VALUES = {'follow': None, 'on': True, 'off': False}
TRANSFER_COLORS = {'succeeded': 'green-8', 'failed': 'red-7', 'running': 'blue-7', 'queued': 'grey-7'}
TRANSFER_STATUS_WORDS = {'succeeded': N_('succeeded'), 'failed': N_('failed'), 'running': N_('running'),
                         'queued': N_('queued')}


def dicom_panel(actor: Actor) -> None:
    """Show the app-wide de-identification switch, the DICOM nodes and the latest transfers."""
    ui.label(_('De-identified review')).classes('text-subtitle1')
    ui.label(_('When on, doctors view and download images with names, ids, birth dates, addresses and private tags '
               'removed (DICOM Basic Application Confidentiality Profile); age and sex stay. Patients and admins '
               'always get the originals, and stored files never change. Each examination can override this.')) \
        .classes('text-caption')

    def set_global(event) -> None:  # noqa: ANN001 (a NiceGUI change event)
        try:
            review_policy.set_global_default(actor=actor, enabled=bool(event.value))
        except Exception as error:  # noqa: BLE001 (logged and shown generically by notify_error)
            notify_error(error)
            return
        ui.notify(_('De-identified review for doctors is now on.') if event.value
                  else _('De-identified review for doctors is now off.'), position='top')

    ui.switch(_('De-identify images for doctors by default'), value=review_policy.get_global_default(actor=actor),
              on_change=set_global).mark('deidentify-global')

    ui.label(_('DICOM nodes')).classes('text-subtitle1 q-mt-md')
    ui.label(_('PACS or viewers that receive studies with C-STORE. The study is sent as stored, with the report as '
               'an encapsulated PDF in the same study.')).classes('text-caption')

    @ui.refreshable
    def node_list() -> None:
        nodes = dicom_nodes.list_nodes(actor=actor)
        if not nodes:
            ui.label(_('No DICOM nodes yet.')).classes('text-grey-7')
        for node in nodes:
            with ui.row().classes('w-full items-center gap-2').mark(f'dicom-node-{node.name}'):
                ui.label(_('{name}: {address}, calling AE {calling_ae_title}', name=node.name, address=node.address,
                           calling_ae_title=node.calling_ae_title)).classes('text-body2')
                ui.badge(_('enabled') if node.enabled else _('disabled'), color='green-8' if node.enabled else 'grey-7')
                ui.button(_('Edit'), on_click=lambda chosen=node: _node_dialog(actor, node_list.refresh, chosen)) \
                    .props('flat dense').mark(f'edit-node-{node.name}')

                def toggle(node_id: int = node.id, enabled: bool = not node.enabled) -> None:
                    try:
                        dicom_nodes.set_node_enabled(actor=actor, node_id=node_id, enabled=enabled)
                    except Exception as error:  # noqa: BLE001
                        notify_error(error)
                    node_list.refresh()

                ui.button(_('Enable') if not node.enabled else _('Disable'), on_click=toggle).props('flat dense') \
                    .mark(f'toggle-node-{node.name}')

    node_list()
    ui.button(_('Add a DICOM node'), icon='add', on_click=lambda: _node_dialog(actor, node_list.refresh)) \
        .props('outline').mark('add-dicom-node')

    ui.label(_('Latest transfers')).classes('text-subtitle1 q-mt-md')
    transfers = ui.refreshable(_transfers)
    transfers(actor, None, lambda: transfers.refresh())
    ui.button(_('Refresh'), icon='refresh', on_click=lambda: transfers.refresh()).props('flat dense')


def _node_dialog(actor: Actor, on_saved, node: dicom_nodes.NodeView | None = None) -> None:  # noqa: ANN001
    with ui.dialog() as dialog, ui.card().classes('w-96'):
        ui.label(_('Edit DICOM node') if node else _('Add a DICOM node')).classes('text-h6')
        name = ui.input(_('Name'), value=node.name if node else '').classes('w-full').mark('node-name')
        ae_title = ui.input(_('AE title of the node'), value=node.ae_title if node else '') \
            .classes('w-full').mark('node-ae-title')
        host = ui.input(_('Host'), value=node.host if node else '').classes('w-full').mark('node-host')
        port = ui.input(_('Port'), value=str(node.port) if node else '104').classes('w-full').mark('node-port')
        calling = ui.input(_('Calling AE title (this app)'),
                           value=node.calling_ae_title if node else dicom_nodes.DEFAULT_CALLING_AE_TITLE) \
            .classes('w-full').mark('node-calling-ae-title')
        message = ui.label('').classes('text-negative').mark('node-error')
        fields = {'name': name, 'ae_title': ae_title, 'host': host, 'port': port, 'calling_ae_title': calling}

        def save() -> None:
            message.text = ''
            for field in fields.values():
                field.props(remove='error error-message')
            try:
                dicom_nodes.save_node(actor=actor, node_id=node.id if node else None, name=name.value or '',
                                      ae_title=ae_title.value or '', host=host.value or '', port=port.value,
                                      calling_ae_title=calling.value or '', enabled=node.enabled if node else True)
            except DomainError as error:
                show_form_error(message, fields, error)
                return
            except Exception as error:  # noqa: BLE001
                notify_error(error)
                return
            dialog.close()
            on_saved()

        with ui.row().classes('w-full justify-end'):
            ui.button(_('Cancel'), on_click=dialog.close).props('flat')
            ui.button(_('Save'), on_click=save).mark('save-dicom-node')
    dialog.open()


def _transfers(actor: Actor, examination_id: str | None, on_change: Callable[[], None]) -> None:
    """List the latest transfers, each failed one with a button that sends its study again."""
    transfers = dicom_send.list_transfers(actor=actor, examination_id=examination_id, limit=20)

    def resend(transfer_id: int) -> None:
        try:
            dicom_send.resend(actor=actor, transfer_id=transfer_id)
        except Exception as error:  # noqa: BLE001 (domain errors shown, others logged)
            notify_error(error)
            return
        ui.notify(_('Sending the study again. Its progress shows below.'), position='top')
        on_change()

    if not transfers:
        ui.label(_('No studies sent yet.')).classes('text-grey-7')
    for transfer in transfers:
        with ui.row().classes('w-full items-center gap-2').mark(f'transfer-{transfer.id}'):
            status = _(TRANSFER_STATUS_WORDS.get(transfer.status, transfer.status))
            ui.badge(status, color=TRANSFER_COLORS.get(transfer.status, 'grey-7')) \
                .mark(f'transfer-status-{transfer.id}')
            ui.label(_('Examination {examination} to {node}: {sent} of {total} files sent, {time}',
                       examination=transfer.examination_id[:8], node=transfer.node_name, sent=transfer.files_sent,
                       total=transfer.files_total, time=format_time(transfer.created_at))) \
                .classes('text-body2')
            if transfer.error:
                ui.label(transfer.error[:300]).classes('text-caption text-negative')
            if transfer.status == 'failed':
                ui.button(_('Send again'), icon='replay',
                          on_click=lambda transfer_id=transfer.id: resend(transfer_id)) \
                    .props('flat dense').mark(f'resend-{transfer.id}')


def examination_tools(actor: Actor, exams: list[ExamView]) -> None:
    """Per examination: the de-identification choice and sending the study to a DICOM node."""
    if not exams:
        return
    with ui.expansion(_('De-identification and sending for one examination'), icon='tune') \
            .classes('w-full q-mt-md').mark('exam-tools'):
        options = {exam.id: f'{exam.id[:8]} {exam.patient_name}, {exam.modality} {exam.body_part} '
                            f'({exam.status_label})' for exam in exams}
        chosen = ui.select(options, label=_('Examination'), with_input=True).classes('w-full').mark('exam-tools-exam')

        @ui.refreshable
        def tools() -> None:
            if not chosen.value:
                ui.label(_('Choose an examination.')).classes('text-grey-7')
                return
            policy = review_policy.get_exam_policy(actor=actor, examination_id=chosen.value)
            current = 'follow'
            if policy.choice is not None:
                current = 'on' if policy.choice else 'off'

            def set_choice(event) -> None:  # noqa: ANN001 (a NiceGUI change event)
                try:
                    review_policy.set_exam_choice(actor=actor, examination_id=chosen.value,
                                                  choice=CHOICE_VALUES[event.value])
                except Exception as error:  # noqa: BLE001
                    notify_error(error)
                tools.refresh()

            ui.select({value: _(label) for value, label in DEIDENTIFY_CHOICES.items()}, value=current,
                      label=_('Images for doctors'), on_change=set_choice) \
                .classes('w-full').mark('exam-deidentify')
            ui.label(_('Doctors now get de-identified images.') if policy.effective
                     else _('Doctors now get the original images.')) \
                .classes('text-caption').mark('exam-deidentify-effective')

            nodes = {node.id: f'{node.name} ({node.address})'
                     for node in dicom_nodes.list_nodes(actor=actor, enabled_only=True)}
            if not nodes:
                ui.label(_('Add a DICOM node in the DICOM tab to send studies.')).classes('text-grey-7')
                return
            node = ui.select(nodes, value=next(iter(nodes)), label=_('DICOM node')).classes('w-full') \
                .mark('exam-send-node')

            transfers = ui.refreshable(_transfers)

            def send() -> None:
                try:
                    dicom_send.send_study(actor=actor, examination_id=chosen.value, node_id=node.value)
                except Exception as error:  # noqa: BLE001
                    notify_error(error)
                    return
                ui.notify(_('Sending the study. Its progress shows below.'), position='top')
                transfers.refresh()

            with ui.row().classes('items-center gap-2'):
                ui.button(_('Send study'), icon='send', on_click=send).mark('send-study')
                ui.button(_('Refresh'), icon='refresh', on_click=lambda: transfers.refresh()).props('flat dense')
            transfers(actor, chosen.value, lambda: transfers.refresh())

        chosen.on_value_change(lambda: tools.refresh())
        tools()
