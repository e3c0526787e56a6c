"""Alembic environment of the read side. Configured in code (consumers.store.alembic_config), no alembic.ini.

``Store.migrate()`` hands its own connection in ``config.attributes["connection"]``; otherwise the URL in the
config's ``sqlalchemy.url`` is used. SQLite gets batch mode so later ALTERs work.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

from consumers.store import Base, UtcDateTime, normalize_url

config = context.config
target_metadata = Base.metadata


def _render_item(type_: str, obj, _ctx):
    """Autogenerate writes plain SQLAlchemy types into migrations, never the project's TypeDecorators."""
    if type_ == "type" and isinstance(obj, UtcDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def _configure(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        render_item=_render_item,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline() -> None:
    context.configure(
        url=normalize_url(config.get_main_option("sqlalchemy.url")),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        return
    engine = create_engine(normalize_url(config.get_main_option("sqlalchemy.url")), poolclass=pool.NullPool)
    with engine.connect() as connection:
        _configure(connection)
        connection.commit()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
