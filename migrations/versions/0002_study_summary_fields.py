"""study summary fields: patient name, sex and age per study, body part per series

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04 23:30:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The server default '' fills the new NOT NULL columns of rows that exist already.
    with op.batch_alter_table('studies', schema=None) as batch_op:
        batch_op.add_column(sa.Column('patient_name', sa.String(length=200), server_default='', nullable=False))
        batch_op.add_column(sa.Column('patient_sex', sa.String(length=16), server_default='', nullable=False))
        batch_op.add_column(sa.Column('patient_age', sa.String(length=16), server_default='', nullable=False))

    with op.batch_alter_table('series', schema=None) as batch_op:
        batch_op.add_column(sa.Column('body_part', sa.String(length=64), server_default='', nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('series', schema=None) as batch_op:
        batch_op.drop_column('body_part')

    with op.batch_alter_table('studies', schema=None) as batch_op:
        batch_op.drop_column('patient_age')
        batch_op.drop_column('patient_sex')
        batch_op.drop_column('patient_name')
