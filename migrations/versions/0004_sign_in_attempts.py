"""sign-in throttle: failed sign-ins counted per account and per client address

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05 00:10:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'sign_in_attempts',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('key_kind', sa.String(length=16), nullable=False),
        sa.Column('key_hash', sa.String(length=64), nullable=False),
        sa.Column('failures', sa.Integer(), nullable=False),
        sa.Column('last_failed_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('locked_until', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_sign_in_attempts')),
        sa.UniqueConstraint('key_kind', 'key_hash', name='uq_sign_in_attempts_key'),
    )


def downgrade() -> None:
    op.drop_table('sign_in_attempts')
