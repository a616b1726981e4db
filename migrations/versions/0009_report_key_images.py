"""key images of a report: slices the doctor picked, printed in the report PDF

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05 09:00:00.000000
"""
from alembic import op
import sqlalchemy as sa

from secondopinion.models.base import UTCDateTime


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'report_key_images',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('report_id', sa.Integer(), nullable=False),
        sa.Column('series_id', sa.Integer(), nullable=False),
        sa.Column('slice_index', sa.Integer(), nullable=False),
        sa.Column('window_center', sa.Float(), nullable=True),
        sa.Column('window_width', sa.Float(), nullable=True),
        sa.Column('caption', sa.String(length=200), nullable=False),
        sa.Column('added_at', UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['report_id'], ['reports.id'], name=op.f('fk_report_key_images_report_id_reports')),
        sa.ForeignKeyConstraint(['series_id'], ['series.id'], name=op.f('fk_report_key_images_series_id_series')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_report_key_images')),
        sa.UniqueConstraint('report_id', 'series_id', 'slice_index', name='uq_report_key_images_slice'),
    )
    op.create_index('ix_report_key_images_report_id', 'report_key_images', ['report_id'])


def downgrade() -> None:
    op.drop_index('ix_report_key_images_report_id', table_name='report_key_images')
    op.drop_table('report_key_images')
