"""The models, with the columns the attribute catalog maps, describe exactly what the migrations build."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from xdsi.repository import db
from xdsi.repository.models import Base


def test_the_migrations_build_the_schema_the_models_describe(database_url: str) -> None:
    engine = db.create_engine_for(database_url)
    try:
        db.upgrade(engine)
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []
    finally:
        engine.dispose()
