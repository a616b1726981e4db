"""DICOM nodes (PACS and viewers) that admins configure, so that studies can be sent to them."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from ..db import session_scope
from ..models import DicomNode, Role
from . import audit
from .actors import Actor, require_role
from .errors import ConflictError, NotFoundError, ValidationError

logger = logging.getLogger(__name__)

DEFAULT_CALLING_AE_TITLE = 'SECONDOPINION'
# An AE title has 1 to 16 characters of the Default Character Repertoire without backslash or
# control characters, and is not only spaces (PS3.5 table 6.2-1, VR AE).
AE_TITLE_PATTERN = re.compile(r'^[\x20-\x5b\x5d-\x7e]{1,16}$')
HOST_PATTERN = re.compile(r'^[A-Za-z0-9.:\-\[\]]{1,255}$')


@dataclass(frozen=True)
class NodeView:
    id: int
    name: str
    ae_title: str
    host: str
    port: int
    calling_ae_title: str
    enabled: bool

    @property
    def address(self) -> str:
        return f'{self.ae_title}@{self.host}:{self.port}'


def _view(node: DicomNode) -> NodeView:
    return NodeView(id=node.id, name=node.name, ae_title=node.ae_title, host=node.host, port=node.port,
                    calling_ae_title=node.calling_ae_title, enabled=node.enabled)


def list_nodes(*, actor: Actor, enabled_only: bool = False) -> list[NodeView]:
    require_role(actor, Role.ADMIN)
    with session_scope() as session:
        query = select(DicomNode).order_by(DicomNode.name)
        if enabled_only:
            query = query.where(DicomNode.enabled.is_(True))
        return [_view(node) for node in session.scalars(query)]


def get_node(*, actor: Actor, node_id: int) -> NodeView:
    require_role(actor, Role.ADMIN)
    with session_scope() as session:
        node = session.get(DicomNode, node_id)
        if node is None:
            raise NotFoundError('DICOM node')
        return _view(node)


def save_node(*, actor: Actor, name: str, ae_title: str, host: str, port: int | str | None,
              calling_ae_title: str = DEFAULT_CALLING_AE_TITLE, enabled: bool = True,
              node_id: int | None = None) -> int:
    """Create a node, or change the node `node_id`, after checking every field; return its id."""
    require_role(actor, Role.ADMIN)
    name = (name or '').strip()
    if not name or len(name) > 100:
        raise ValidationError('The name is missing or longer than 100 characters.', field='name')
    ae_title = _check_ae_title(ae_title, 'ae_title', 'AE title of the node')
    calling_ae_title = _check_ae_title(calling_ae_title or DEFAULT_CALLING_AE_TITLE, 'calling_ae_title',
                                       'calling AE title')
    host = (host or '').strip()
    if not HOST_PATTERN.fullmatch(host):
        raise ValidationError(f'The host "{host[:60]}" is invalid: enter a host name or IP address.', field='host')
    port_number = _check_port(port)

    fields = {'name': name, 'ae_title': ae_title, 'host': host, 'port': port_number,
              'calling_ae_title': calling_ae_title, 'enabled': enabled}
    try:
        with session_scope() as session:
            if node_id is None:
                node = DicomNode(**fields)
                session.add(node)
                session.flush()
                action = 'dicom_node.created'
            else:
                node = session.get(DicomNode, node_id)
                if node is None:
                    raise NotFoundError('DICOM node')
                for key, value in fields.items():
                    setattr(node, key, value)
                action = 'dicom_node.updated'
            audit.record(session, actor, action, 'dicom_node', node.id, **fields)
            saved_id = node.id
    except IntegrityError:
        raise ConflictError(f'A DICOM node named "{name}" already exists: choose another name.') from None
    logger.info('DICOM node %s saved by user %s (%s)', saved_id, actor.user_id, action)
    return saved_id


def set_node_enabled(*, actor: Actor, node_id: int, enabled: bool) -> None:
    """Enable or disable a node; a disabled node is not offered for sending and keeps its history."""
    require_role(actor, Role.ADMIN)
    with session_scope() as session:
        node = session.get(DicomNode, node_id)
        if node is None:
            raise NotFoundError('DICOM node')
        node.enabled = enabled
        audit.record(session, actor, 'dicom_node.enabled' if enabled else 'dicom_node.disabled', 'dicom_node',
                     node.id)
    logger.info('DICOM node %s %s by user %s', node_id, 'enabled' if enabled else 'disabled', actor.user_id)


def _check_ae_title(value: str, field: str, label: str) -> str:
    title = (value or '').strip()
    if not AE_TITLE_PATTERN.fullmatch(title):
        raise ValidationError(f'The {label} "{title[:20]}" is invalid: use 1 to 16 letters, digits, spaces or '
                              'punctuation, without a backslash.', field=field)
    return title


def _check_port(port: int | str | None) -> int:
    try:
        number = int(str(port).strip())
    except ValueError:
        number = 0
    if not 1 <= number <= 65535:
        raise ValidationError(f'The port "{port}" is invalid: enter a number from 1 to 65535, often 104 or 11112.',
                              field='port')
    return number
