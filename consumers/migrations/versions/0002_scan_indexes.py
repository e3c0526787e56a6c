"""Indexes for the scan service: what changed since a sink position (lots, alerts by their source position: the
resolver's cache invalidation) and a serial's scans in time order (count, first and last scan from the index).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

from typing import Sequence, Union

from alembic import op

revision: str = "0002"
down_revision: Union[str, None] = "0001"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

INDEXES = {
    "ix_lots_source": ("lots", ["source_partition", "source_offset"]),
    "ix_alerts_source": ("alerts", ["source_partition", "source_offset"]),
    "ix_scans_serial_scanned": ("scans", ["serial", "scanned_utc", "scan_id"]),
}


def upgrade() -> None:
    for name, (table, cols) in INDEXES.items():
        op.create_index(name, table, cols)


def downgrade() -> None:
    for name, (table, _cols) in reversed(INDEXES.items()):
        op.drop_index(name, table_name=table)
