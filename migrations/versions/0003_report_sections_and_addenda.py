"""report technique and comparison with the first report; report addenda

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04 23:45:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The server defaults fill the new NOT NULL columns of reports that exist already.
    with op.batch_alter_table('reports', schema=None) as batch_op:
        batch_op.add_column(sa.Column('technique', sa.Text(), server_default='', nullable=False))
        batch_op.add_column(sa.Column('comparison', sa.String(length=16), server_default='', nullable=False))
        batch_op.add_column(sa.Column('comparison_note', sa.Text(), server_default='', nullable=False))

    op.create_table(
        'report_addenda',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('report_id', sa.Integer(), nullable=False),
        sa.Column('number', sa.Integer(), nullable=False),
        sa.Column('doctor_id', sa.Integer(), nullable=False),
        sa.Column('text', sa.Text(), nullable=False),
        sa.Column('signed_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('pdf_key', sa.String(length=300), nullable=False),
        sa.Column('pdf_sha256', sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(['doctor_id'], ['doctors.id'], name=op.f('fk_report_addenda_doctor_id_doctors')),
        sa.ForeignKeyConstraint(['report_id'], ['reports.id'], name=op.f('fk_report_addenda_report_id_reports')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_report_addenda')),
        sa.UniqueConstraint('report_id', 'number', name='uq_report_addenda_number'),
    )
    with op.batch_alter_table('report_addenda', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_report_addenda_report_id'), ['report_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('report_addenda', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_report_addenda_report_id'))
    op.drop_table('report_addenda')

    with op.batch_alter_table('reports', schema=None) as batch_op:
        batch_op.drop_column('comparison_note')
        batch_op.drop_column('comparison')
        batch_op.drop_column('technique')
