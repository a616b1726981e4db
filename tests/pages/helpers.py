"""Steps that page tests share: signing in and uploading files as a browser would."""

from __future__ import annotations

from pathlib import Path

from nicegui import ui
from nicegui.elements.upload_files import SmallFileUpload
from nicegui.testing import User

from tests.conftest import PASSWORD


async def sign_in(user: User, email: str, password: str = PASSWORD) -> None:
    await user.open('/login')
    user.find(marker='email').type(email)
    user.find(marker='password').type(password)
    user.find(marker='sign-in').click()


async def upload(user: User, marker: str, paths: list[Path]) -> None:
    element = user.find(marker=marker).elements.pop()
    assert isinstance(element, ui.upload)
    files = [SmallFileUpload(name=path.name, content_type='application/octet-stream', _data=path.read_bytes())
             for path in paths]
    await element.handle_uploads(files)


def set_value(user: User, marker: str, value: object) -> None:
    for element in user.find(marker=marker).elements:
        element.value = value
