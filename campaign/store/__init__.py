"""The store: SQLAlchemy Core on SQLite (default) or PostgreSQL. The only package that talks SQL.

- `schema`: the tables and the schema version.
- `engine`: `open_store(url)` → a ready `Engine` (created or upgraded; refused if newer).
- one module per area of queries (`campaigns`, `batches`, `reports`, `suppression`, ...).
"""

from campaign.store.engine import open_store

__all__ = ["open_store"]
