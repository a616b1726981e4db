"""The page element that uploads a study through the chunked upload routes instead of NiceGUI's ui.upload.

ui.upload sends every chosen file in one request, which froze the tab and lost files with a
series of 1,200 images. This element sends files a few at a time with progress and retries
(study_uploader.js) and leaves all checks to the server.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nicegui.element import Element
from nicegui.events import GenericEventArguments

from ..i18n import N_, _, ngettext

HINT = N_('DICOM files, a .zip of the CD, or the folder of the CD. You can also drop them here.')
SHORT_HINT = N_('DICOM files or a .zip of the CD.')
UPLOAD_FAILED = N_('The upload failed. Please try again.')


def uploader_texts() -> dict[str, str]:
    """Return the uploader's texts in the current language, as templates whose {placeholders} the browser fills.

    The browser picks `files_one` for a count of 1 and `files_other` for any other count.
    """
    # NOTE: two plural forms cover English and Turkish; a language with more forms needs the count sent here.
    return {
        'choose_files': _('Choose files'),
        'choose_folder': _('Choose a folder'),
        'files_input': _('DICOM files or a .zip of the CD'),
        'folder_input': _('Folder of the CD'),
        # The browser fills {number}; ngettext itself fills only {count}, which these templates lack.
        'files_one': ngettext('{number} file', '{number} files', 1),
        'files_other': ngettext('{number} file', '{number} files', 2),
        'bytes': _('{count} bytes'),
        'preparing': _('Preparing {files}...'),
        'one_sent': _('The file was sent.'),
        'all_sent': _('All {files} sent.'),
        'checking': _('Checking and storing the images...'),
        'sending': _('Sending {done} of {files}, {sent} of {total}'),
        'attempt': _('try {count}'),
        'cancel': _('Cancel upload'),
        'cancelled': _('Upload cancelled. Nothing from it was stored.'),
        'folder_unreadable': _('The dropped folder could not be read. Use Choose a folder instead.'),
        'failed': _(UPLOAD_FAILED),
        'connection_lost': _('The connection to the server was lost. Check your connection and upload again.'),
        'server_status': _('The upload failed (server status {status}). Please try again.'),
        'not_sent': _('{name} could not be sent after {count} tries. Check your connection and upload again.'),
    }


class StudyUploader(Element, component='study_uploader.js'):
    """Uploads files to one examination and calls `on_uploaded` with the server's summary or `on_failed`.

    `on_failed` gets the message and a list of (file name, reason) for the rejected files, empty when
    the upload failed as a whole (a lost connection, a cancel, a size limit).
    """

    def __init__(self, examination_id: str, *, concurrency: int = 3,
                 on_uploaded: Callable[[dict[str, Any]], Any] | None = None,
                 on_failed: Callable[[str, list[tuple[str, str]]], Any] | None = None) -> None:
        super().__init__()
        self._props['url'] = f'/api/exams/{examination_id}/uploads'
        self._props['concurrency'] = concurrency
        self._props['hint'] = _(HINT)
        self._props['shorthint'] = _(SHORT_HINT)
        self._props['texts'] = uploader_texts()
        # The lambdas return what the handlers return, so NiceGUI awaits an async handler in this element's slot.
        if on_uploaded is not None:
            self.on('uploaded', lambda event: on_uploaded(_summary(event)))
        if on_failed is not None:
            self.on('failed', lambda event: on_failed(_message(event), _rejected_files(event)))


def _summary(event: GenericEventArguments) -> dict[str, Any]:
    return event.args if isinstance(event.args, dict) else {}


def _message(event: GenericEventArguments) -> str:
    args = event.args if isinstance(event.args, dict) else {}
    message = args.get('message')
    return message if isinstance(message, str) and message else _(UPLOAD_FAILED)


def _rejected_files(event: GenericEventArguments) -> list[tuple[str, str]]:
    args = event.args if isinstance(event.args, dict) else {}
    files = args.get('files')
    if not isinstance(files, list):
        return []
    return [(str(item.get('name', '')), str(item.get('reason', ''))) for item in files if isinstance(item, dict)]
