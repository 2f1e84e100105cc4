"""Persistence: SQLAlchemy models, the session factory, Alembic migrations and the runtime-state store."""
