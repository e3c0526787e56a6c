"""The read side's first schema: lots and their steps, lineage edges and origins, stamps, alerts, scans,
master data (subjects, areas, products, the rating history, facilities) and the sink's bookkeeping.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: Union[str, None] = None
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

# A frozen copy of the types used (migrations never import the models: they must not change under them).
S, T, I, BI, F, B, J = sa.String, sa.Text, sa.Integer, sa.BigInteger, sa.Float, sa.Boolean, sa.JSON


def UTC() -> sa.DateTime:  # consumers.store.UtcDateTime's storage type
    return sa.DateTime(timezone=True)


def col(name: str, type_, nullable: bool = False) -> sa.Column:
    return sa.Column(name, type_() if isinstance(type_, type) else type_, nullable=nullable)


def null(name: str, type_) -> sa.Column:
    return col(name, type_, True)


def source() -> list[sa.Column]:
    return [col("source_partition", I), col("source_offset", BI)]


def master() -> list[sa.Column]:
    return [col("event_id", S), col("occurred_at", S), col("occurred_utc", UTC()), *source()]


# table -> (columns, primary key, indexes {name: columns})
TABLES: dict[str, tuple[list[sa.Column], list[str], dict[str, list[str]]]] = {
    "lots": ([
        col("lot", S), null("subject_id", S), null("gtin", S), null("product_name_vi", T), null("product_name_en", T),
        null("ocop_group", S), null("product_owner", S), null("rating_stars", I), null("rating_score", I),
        null("rating_level", S), null("rating_decision_no", T), null("rating_decision_date", S),
        null("rating_valid_from", S), null("rating_valid_to", S), col("status", S), null("production_date", S),
        null("expiry_date", S), col("units_packaged", I), col("units_shipped", I), col("units_sold", I),
        null("recall_reason", T), null("recall_event_id", S), null("recall_scope", S), null("recall_target", S),
        col("chain_head", S), col("chain_length", I), col("event_count", I), col("record", T),
        null("first_event_at", UTC()), null("last_event_at", UTC()), *source(),
    ], ["lot"], {
        "ix_lots_subject_id": ["subject_id"], "ix_lots_gtin": ["gtin"], "ix_lots_status": ["status"],
        "ix_lots_production_date": ["production_date"], "ix_lots_first_event_at": ["first_event_at"],
        "ix_lots_last_event_at": ["last_event_at"],
    }),
    "steps": ([
        col("lot", S), col("seq", I), col("event_id", S), col("event_type", S), col("occurred_at", S),
        null("occurred_utc", UTC()), null("facility", S), null("subject_id", S), null("actor_user", S),
        null("quantity", F), null("unit", S), null("units", I), col("detail", T), col("voided", B),
    ], ["lot", "seq"], {
        "ix_steps_event_id": ["event_id"], "ix_steps_occurred_utc": ["occurred_utc"],
        "ix_steps_lot_occurred": ["lot", "occurred_utc"],
    }),
    "lineage_edges": ([col("parent_lot", S), col("child_lot", S)], ["parent_lot", "child_lot"],
                      {"ix_lineage_edges_child_lot": ["child_lot"]}),
    "lot_origins": ([col("lot", S), col("area_code", S), col("harvest_lot", S)], ["lot", "area_code", "harvest_lot"],
                    {"ix_lot_origins_area_code": ["area_code"]}),
    "stamps": ([
        col("range_id", S), col("lot", S), col("gtin", S), col("key_id", S), col("first_index", BI), col("count", I),
        col("issued_at", S), null("issued_utc", UTC()), null("request_id", S),
    ], ["range_id"], {"ix_stamps_lot": ["lot"], "ix_stamps_gtin_lot": ["gtin", "lot"]}),
    "alerts": ([
        col("alert_id", S), col("rule", S), col("severity", S), null("lot", S), null("serial", S), null("event_id", S),
        col("detail", T), col("raised_at", S), null("raised_utc", UTC()), col("state", S), *source(),
    ], ["alert_id"], {
        "ix_alerts_rule": ["rule"], "ix_alerts_lot": ["lot"], "ix_alerts_serial": ["serial"],
        "ix_alerts_raised_utc": ["raised_utc"],
    }),
    "scans": ([
        col("scan_id", S), col("serial", S), col("gtin", S), col("lot", S), col("scanned_at", S),
        null("scanned_utc", UTC()), null("region", S), null("lat", F), null("lon", F), col("client_hash", S),
        col("verdict", S),
    ], ["scan_id"], {"ix_scans_serial": ["serial"], "ix_scans_lot": ["lot"]}),
    "subjects": ([
        col("subject_id", S), col("name", T), col("kind", S), null("tax_id", S), col("province_code", S),
        null("commune_code", S), col("address", T), null("contact", T), *master(),
    ], ["subject_id"], {"ix_subjects_province_code": ["province_code"]}),
    "areas": ([
        col("area_code", S), col("owner_subject_id", S), col("name", T), col("crops", J), col("area_ha", F),
        col("location", J), col("certifications", J), col("valid_from", S), null("valid_to", S), col("revoked", B),
        *master(),
    ], ["area_code"], {"ix_areas_owner_subject_id": ["owner_subject_id"]}),
    "products": ([
        col("gtin", S), col("owner_subject_id", S), col("name_vi", T), col("name_en", T), col("ocop_group", S),
        null("net_content", J), null("shelf_life_days", I), *master(),
    ], ["gtin"], {"ix_products_owner_subject_id": ["owner_subject_id"]}),
    "ratings": ([
        col("event_id", S), col("gtin", S), col("action", S), col("stars", I), col("score", I), col("level", S),
        col("decision_no", T), col("decision_date", S), col("valid_from", S), col("valid_to", S),
        col("occurred_at", S), col("occurred_utc", UTC()), *source(),
    ], ["event_id"], {"ix_ratings_gtin": ["gtin"]}),
    "facilities": ([
        col("facility_id", S), col("owner_subject_id", S), col("name", T), col("kind", S), col("address", T),
        null("lat", F), null("lon", F), *master(),
    ], ["facility_id"], {"ix_facilities_owner_subject_id": ["owner_subject_id"]}),
    "sink_offsets": ([col("topic", S), col("partition", I), col("next_offset", BI)], ["topic", "partition"], {}),
    "sink_rejects": ([
        col("topic", S), col("partition", I), col("offset", BI), null("key", T), col("reason", T),
    ], ["topic", "partition", "offset"], {}),
}


def upgrade() -> None:
    for name, (columns, pk, indexes) in TABLES.items():
        op.create_table(name, *columns, sa.PrimaryKeyConstraint(*pk, name=f"pk_{name}"))
        for ix, cols in indexes.items():
            op.create_index(ix, name, cols)


def downgrade() -> None:
    for name, (_columns, _pk, indexes) in reversed(TABLES.items()):
        for ix in indexes:
            op.drop_index(ix, table_name=name)
        op.drop_table(name)
