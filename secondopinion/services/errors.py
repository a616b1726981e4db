"""Domain errors. Their message is written for the user and is shown by pages in the user's language.

A message is an English msgid with {named} placeholders whose values come as keyword arguments,
such as `ValidationError('Password must have at least {count} characters.', field='password', count=12)`.
`str(error)` is the English text; pages show `i18n.error_message(error)`, which translates the msgid.
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """A rule of the practice forbids the request. The message names the rule and the next step."""

    # Placeholder names whose values are themselves msgids, translated along with the message.
    translated_params: tuple[str, ...] = ()

    def __init__(self, message: str, **params: Any) -> None:
        from ..i18n import PLACEHOLDER

        self.msgid = message
        self.params = params
        english = PLACEHOLDER.sub(lambda match: str(params.get(match.group(1), match.group(0))), message) \
            if params else message
        super().__init__(english)


class NotFoundError(DomainError):
    """The object does not exist or the actor may not see it. Both cases raise the same error."""

    translated_params = ('subject',)

    def __init__(self, subject: str = 'Item') -> None:
        super().__init__('{subject} not found.', subject=subject)


class ValidationError(DomainError):
    """Input that cannot be accepted; `field` names the form field or file at fault."""

    def __init__(self, message: str, *, field: str | None = None, **params: Any) -> None:
        super().__init__(message, **params)
        self.field = field


class ConflictError(DomainError):
    """The object changed state in the meantime, for example another doctor accepted the case."""


class PermissionDeniedError(DomainError):
    """The actor's role may not do this."""
