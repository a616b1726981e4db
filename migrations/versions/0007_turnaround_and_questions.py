"""turnaround promise per examination, follow-up questions after the report, and share links

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05 06:00:00.000000
"""
from datetime import timedelta

from alembic import op
import sqlalchemy as sa

from secondopinion.models.base import UTCDateTime


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('examinations') as batch:
        batch.add_column(sa.Column('due_at', UTCDateTime(), nullable=True))
        batch.create_index('ix_examinations_due_at', ['due_at'])
    _promise_paid_examinations()
    op.create_table(
        'examination_questions',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('examination_id', sa.String(length=32), nullable=False),
        sa.Column('question', sa.Text(), nullable=False),
        sa.Column('asked_at', UTCDateTime(), nullable=False),
        sa.Column('answer', sa.Text(), nullable=True),
        sa.Column('answered_by_doctor_id', sa.Integer(), nullable=True),
        sa.Column('answered_at', UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(['examination_id'], ['examinations.id'],
                                name=op.f('fk_examination_questions_examination_id_examinations')),
        sa.ForeignKeyConstraint(['answered_by_doctor_id'], ['doctors.id'],
                                name=op.f('fk_examination_questions_answered_by_doctor_id_doctors')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_examination_questions')),
    )
    op.create_index('ix_examination_questions_examination_id', 'examination_questions', ['examination_id'])
    op.create_table(
        'share_links',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('examination_id', sa.String(length=32), nullable=False),
        sa.Column('created_by_user_id', sa.Integer(), nullable=False),
        sa.Column('token_hash', sa.String(length=64), nullable=False),
        sa.Column('label', sa.String(length=120), nullable=False),
        sa.Column('access_code_hash', sa.String(length=200), nullable=True),
        sa.Column('created_at', UTCDateTime(), nullable=False),
        sa.Column('expires_at', UTCDateTime(), nullable=False),
        sa.Column('revoked_at', UTCDateTime(), nullable=True),
        sa.Column('use_count', sa.Integer(), nullable=False),
        sa.Column('last_used_at', UTCDateTime(), nullable=True),
        sa.Column('failed_codes', sa.Integer(), nullable=False),
        sa.Column('locked_until', UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(['examination_id'], ['examinations.id'],
                                name=op.f('fk_share_links_examination_id_examinations')),
        sa.ForeignKeyConstraint(['created_by_user_id'], ['users.id'],
                                name=op.f('fk_share_links_created_by_user_id_users')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_share_links')),
        sa.UniqueConstraint('token_hash', name=op.f('uq_share_links_token_hash')),
    )
    op.create_index('ix_share_links_examination_id', 'share_links', ['examination_id'])


def _promise_paid_examinations() -> None:
    """Give examinations paid before this revision the promise of their urgency under today's settings."""
    from secondopinion.config import get_settings

    settings = get_settings()
    connection = op.get_bind()
    examinations = sa.table('examinations', sa.column('id', sa.String), sa.column('urgency', sa.String),
                            sa.column('paid_at', UTCDateTime()), sa.column('due_at', UTCDateTime()))
    rows = connection.execute(sa.select(examinations.c.id, examinations.c.urgency, examinations.c.paid_at)
                              .where(examinations.c.paid_at.is_not(None))).all()
    for row in rows:
        due_at = row.paid_at + timedelta(hours=settings.turnaround_hours(row.urgency))
        connection.execute(examinations.update().where(examinations.c.id == row.id).values(due_at=due_at))


def downgrade() -> None:
    op.drop_index('ix_share_links_examination_id', table_name='share_links')
    op.drop_table('share_links')
    op.drop_index('ix_examination_questions_examination_id', table_name='examination_questions')
    op.drop_table('examination_questions')
    with op.batch_alter_table('examinations') as batch:
        batch.drop_index('ix_examinations_due_at')
        batch.drop_column('due_at')
