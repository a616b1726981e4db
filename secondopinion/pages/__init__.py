"""NiceGUI pages, one module per role. `register_pages` adds them to the app."""

from __future__ import annotations


def register_pages() -> None:
    from . import (account, admin, board, doctor, element_speedup, language, oidc, patient, privacy, profile, public,
                   sharing, viewer)

    element_speedup.install()

    language.register_routes()
    public.register()
    patient.register()
    board.register()
    doctor.register()
    admin.register()
    viewer.register()
    profile.register()
    oidc.register()
    account.register()
    privacy.register()
    sharing.register()
