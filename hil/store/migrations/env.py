"""Alembic's environment for the store: always run on the connection that
:mod:`hil.store.schema` hands it (under its creation lock, inside its transaction)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from hil.store.models import Base

config = context.config
connection = config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise RuntimeError("the store's migrations run through hil.store.schema, which hands them a connection")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    transactional_ddl=True,
)
with context.begin_transaction():
    context.run_migrations()
