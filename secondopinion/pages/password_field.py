"""Password fields with a show/hide button that keyboard and screen reader users can reach."""

from __future__ import annotations

from nicegui import ui


def password_input(label: str, *, subject: str = 'password') -> ui.input:
    """Add a password field with a button after it that shows or hides the typed `subject`.

    NiceGUI's `password_toggle_button` draws a bare icon that Tab skips and that has no name. This button
    is a real <button>: Tab reaches it after the field, Enter and Space press it, and its accessible name
    ("Show password", "Hide password") names what a press does next.
    """
    field = ui.input(label, password=True)
    with field.add_slot('append'):
        toggle = ui.button(icon='visibility_off') \
            .props(f'flat round dense color=grey-8 aria-label="Show {subject}"').mark('password-toggle')

    def switch() -> None:
        hidden = field.props.get('type') == 'password'
        field.props['type'] = 'text' if hidden else 'password'
        toggle.props['icon'] = 'visibility' if hidden else 'visibility_off'
        toggle.props['aria-label'] = f'{"Hide" if hidden else "Show"} {subject}'

    toggle.on_click(switch)
    return field
