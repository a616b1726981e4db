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

HINT = 'DICOM files, a .zip of the CD, or the folder of the CD. You can also drop them here.'
SHORT_HINT = 'DICOM files or a .zip of the CD.'


class StudyUploader(Element, component='study_uploader.js'):
    """Uploads files to one examination; calls `on_uploaded` with the server's summary or `on_failed` with a message."""

    def __init__(self, examination_id: str, *, concurrency: int = 3,
                 on_uploaded: Callable[[dict[str, Any]], Any] | None = None,
                 on_failed: Callable[[str], Any] | None = None) -> None:
        super().__init__()
        self._props['url'] = f'/api/exams/{examination_id}/uploads'
        self._props['concurrency'] = concurrency
        self._props['hint'] = HINT
        self._props['shorthint'] = SHORT_HINT
        # The lambdas return what the handlers return, so NiceGUI awaits an async handler in this element's slot.
        if on_uploaded is not None:
            self.on('uploaded', lambda event: on_uploaded(_summary(event)))
        if on_failed is not None:
            self.on('failed', lambda event: on_failed(_message(event)))


def _summary(event: GenericEventArguments) -> dict[str, Any]:
    return event.args if isinstance(event.args, dict) else {}


def _message(event: GenericEventArguments) -> str:
    args = event.args if isinstance(event.args, dict) else {}
    message = args.get('message')
    return message if isinstance(message, str) and message else 'The upload failed. Please try again.'
