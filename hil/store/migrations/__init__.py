"""The store's Alembic migrations, shipped with the package (``env.py``, ``versions/``).

Configured in code by :func:`hil.store.schema.alembic_config`: no ``alembic.ini`` is needed. A new
revision, from the repository root::

    python -m hil.store.schema revision -m "what changes"
"""
