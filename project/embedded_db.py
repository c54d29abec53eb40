"""An embedded PostgreSQL for a machine with nothing installed (the `pgserver` package).

Used by the example site and the test suite when `DATABASE_URL` is not set. The server keeps its data in a
git-ignored folder and is shared by every process that asks for the same folder (web, worker, tests).
"""

from __future__ import annotations

import warnings
from pathlib import Path


def embedded_database_url(data_dir: Path, database: str = "jobscheduler") -> str:
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
    import pgserver

    data_dir.parent.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(data_dir, cleanup_mode="stop")
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{database}';")
    if "(1 row)" not in exists:
        server.psql(f'CREATE DATABASE "{database}";')
    return server.get_uri(database)
