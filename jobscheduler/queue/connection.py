"""The worker's own psycopg connections, made from the site's Django database settings.

The worker does not share Django's connection: its claim/heartbeat/finish statements run in autocommit on a
connection of its own, LISTEN needs a dedicated one, and handler threads keep Django's per-thread connections.
"""

from __future__ import annotations

import psycopg
from django.db import connections

from ..conf import setting


def connect_params(alias: str = "default") -> dict:
    params = dict(connections[alias].get_connection_params())
    for key in ("cursor_factory", "context", "server_side_binding", "pool"):
        params.pop(key, None)
    # Prepared statements make the hot statements cheaper; a transaction-mode pooler (poll-only mode) cannot
    # keep them across transactions.
    params["prepare_threshold"] = 1 if setting("USE_LISTEN_NOTIFY") else None
    params.setdefault("connect_timeout", 10)
    params["application_name"] = "jobscheduler-worker"
    return params


def open_connection(alias: str = "default", *, autocommit: bool = True) -> psycopg.Connection:
    conn = psycopg.connect(**connect_params(alias), autocommit=autocommit)
    conn.execute("SET TIME ZONE 'UTC'")
    return conn
