"""Password fields with a show/hide button that keyboard and screen reader users can reach."""

from __future__ import annotations

from nicegui import ui

from ..i18n import N_, _

SHOW_PASSWORD, HIDE_PASSWORD = N_('Show password'), N_('Hide password')
SHOW_ACCESS_CODE, HIDE_ACCESS_CODE = N_('Show access code'), N_('Hide access code')


def password_input(label: str, *, show: str = SHOW_PASSWORD, hide: str = HIDE_PASSWORD) -> ui.input:
    """Add a password field with a button after it that shows or hides the typed text.

    `show` and `hide` are the msgids of the button's names while the text is hidden and while it is shown.

    NiceGUI's `password_toggle_button` draws a bare icon that Tab skips and that has no name. This button
    is a real <button>: Tab reaches it after the field, Enter and Space press it, and its accessible name
    ("Show password", "Hide password") names what a press does next.
    """
    field = ui.input(label, password=True)
    with field.add_slot('append'):
        toggle = ui.button(icon='visibility_off') \
            .props(f'flat round dense color=grey-8 aria-label="{_(show)}"').mark('password-toggle')

    def switch() -> None:
        hidden = field.props.get('type') == 'password'
        field.props['type'] = 'text' if hidden else 'password'
        toggle.props['icon'] = 'visibility' if hidden else 'visibility_off'
        toggle.props['aria-label'] = _(hide) if hidden else _(show)

    toggle.on_click(switch)
    return field
