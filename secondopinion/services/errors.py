"""Domain errors. Their message is written for the user and is shown as is by pages."""


class DomainError(Exception):
    """A rule of the practice forbids the request. The message names the rule and the next step."""


class NotFoundError(DomainError):
    """The object does not exist or the actor may not see it. Both cases raise the same error."""

    def __init__(self, subject: str = 'Item') -> None:
        super().__init__(f'{subject} not found.')


class ValidationError(DomainError):
    """Input that cannot be accepted; `field` names the form field or file at fault."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class ConflictError(DomainError):
    """The object changed state in the meantime, for example another doctor accepted the case."""


class PermissionDeniedError(DomainError):
    """The actor's role may not do this."""
