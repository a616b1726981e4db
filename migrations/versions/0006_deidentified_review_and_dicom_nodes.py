"""de-identified review switches, DICOM nodes and transfers

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05 06:00:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('examinations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('deidentify', sa.Boolean(), nullable=True))

    op.create_table(
        'app_settings',
        sa.Column('key', sa.String(length=64), nullable=False),
        sa.Column('value', sa.String(length=200), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_by_user_id', sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(['updated_by_user_id'], ['users.id'],
                                name=op.f('fk_app_settings_updated_by_user_id_users')),
        sa.PrimaryKeyConstraint('key', name=op.f('pk_app_settings')),
    )
    op.create_table(
        'dicom_nodes',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=100), nullable=False),
        sa.Column('ae_title', sa.String(length=16), nullable=False),
        sa.Column('host', sa.String(length=255), nullable=False),
        sa.Column('port', sa.Integer(), nullable=False),
        sa.Column('calling_ae_title', sa.String(length=16), nullable=False),
        sa.Column('enabled', sa.Boolean(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_dicom_nodes')),
        sa.UniqueConstraint('name', name=op.f('uq_dicom_nodes_name')),
    )
    op.create_table(
        'dicom_transfers',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('examination_id', sa.String(length=32), nullable=False),
        sa.Column('node_id', sa.Integer(), nullable=False),
        sa.Column('requested_by_user_id', sa.Integer(), nullable=True),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('files_total', sa.Integer(), nullable=False),
        sa.Column('files_sent', sa.Integer(), nullable=False),
        sa.Column('files_failed', sa.Integer(), nullable=False),
        sa.Column('error', sa.Text(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['examination_id'], ['examinations.id'],
                                name=op.f('fk_dicom_transfers_examination_id_examinations')),
        sa.ForeignKeyConstraint(['node_id'], ['dicom_nodes.id'], name=op.f('fk_dicom_transfers_node_id_dicom_nodes')),
        sa.ForeignKeyConstraint(['requested_by_user_id'], ['users.id'],
                                name=op.f('fk_dicom_transfers_requested_by_user_id_users')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_dicom_transfers')),
    )
    op.create_index(op.f('ix_dicom_transfers_examination_id'), 'dicom_transfers', ['examination_id'])
    op.create_index(op.f('ix_dicom_transfers_node_id'), 'dicom_transfers', ['node_id'])


def downgrade() -> None:
    op.drop_index(op.f('ix_dicom_transfers_node_id'), table_name='dicom_transfers')
    op.drop_index(op.f('ix_dicom_transfers_examination_id'), table_name='dicom_transfers')
    op.drop_table('dicom_transfers')
    op.drop_table('dicom_nodes')
    op.drop_table('app_settings')
    with op.batch_alter_table('examinations', schema=None) as batch_op:
        batch_op.drop_column('deidentify')
