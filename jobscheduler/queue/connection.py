"""The worker's own psycopg connections, made from the site's Django database settings.

The worker does not share Django's connection: its claim/heartbeat/finish statements run in autocommit on a
connection of its own, LISTEN needs a dedicated one, and handler threads keep Django's per-thread connections.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

import psycopg
from django.db import connections
from psycopg.pq import TransactionStatus

from ..libpq import behind_transaction_pooler

logger = logging.getLogger("jobscheduler.worker")

T = TypeVar("T")


def connect_params(alias: str = "default") -> dict:
    params = dict(connections[alias].get_connection_params())
    for key in ("cursor_factory", "context", "server_side_binding", "pool"):
        params.pop(key, None)
    # Prepared statements make the hot statements cheaper; a transaction-mode pooler (poll-only mode) cannot
    # keep them across transactions.
    params["prepare_threshold"] = None if behind_transaction_pooler() else 1
    params.setdefault("connect_timeout", 10)
    params["application_name"] = "jobscheduler-worker"
    return params


#: Every worker statement touches a few rows by key (a claim walks the ready index in order up to LIMIT).
#: Right after a bulk enqueue the queue's statistics still say "a few rows", and the planner then prefers a
#: sequential or bitmap scan of the whole backlog, slower with every queued job. The worker's own connections
#: rule those plans out, and never JIT-compile (the penalty costs of those plans would otherwise trigger JIT,
#: hundreds of milliseconds per statement for statements that run in one); the site's connections are untouched.
#: And their prepared statements keep one generic plan: by its cost estimates PostgreSQL re-planned the
#: unlimited claim for its parameters on 246 of 599 calls (pg_prepared_statements), half a millisecond of
#: planning each time, on the path of every job's latency; the plan is the same keyed walk whatever the values.
WORKER_SESSION = (
    "SET enable_seqscan = off; SET enable_bitmapscan = off; SET jit = off; "
    "SET plan_cache_mode = force_generic_plan"
)


def open_connection(alias: str = "default", *, autocommit: bool = True) -> psycopg.Connection:
    """A worker connection. Its session settings are skipped behind a transaction pooler: there a `SET` lands
    on whichever server connection runs it and stays there for the pooler's other clients (the site's web
    requests would inherit enable_seqscan = off). The time zone is the exception: PgBouncer tracks it per
    client and replays it on every server connection it assigns."""
    conn = psycopg.connect(**connect_params(alias), autocommit=autocommit)
    conn.execute("SET TIME ZONE 'UTC'")
    if not behind_transaction_pooler():
        for statement in WORKER_SESSION.split("; "):
            conn.execute(statement)
    return conn


@contextlib.contextmanager
def pipelined_transaction(conn: psycopg.Connection) -> Iterator[None]:
    """A transaction on an autocommit connection whose statements reach the server in one round trip.

    psycopg's `conn.transaction()` inside a pipeline syncs when it opens and when it closes, so a batch of ends
    paid four round trips instead of one, on the worker's critical path. An explicit BEGIN and COMMIT in the
    same pipeline are sent with the statements and synced once. If anything fails (a statement, so the rest of
    the pipeline is skipped, or the caller's code between statements, after some were sent) the transaction is
    rolled back before the error goes on; on a lost connection there is nothing to roll back. The completer
    needs that, since several of its statements write; the claim, whose one writing statement is followed by
    reads only, uses the pipeline's own transaction (`WorkerConnection.fetch_in_transaction`).
    """
    try:
        with conn.pipeline():
            conn.execute("BEGIN", prepare=False)
            yield
            conn.execute("COMMIT", prepare=False)
    except BaseException:
        if not conn.closed and conn.info.transaction_status in (
            TransactionStatus.INTRANS,
            TransactionStatus.INERROR,
        ):
            with contextlib.suppress(psycopg.Error):
                conn.execute("ROLLBACK", prepare=False)
        raise


class WorkerConnection:
    """The worker's main connection (register, claim, unregister), re-made when it is lost: a database restart
    costs the loop a turn, not the worker.

    `give_up` says when to stop trying to reconnect (a stopping worker past its shutdown deadline)."""

    def __init__(self, *, give_up: Callable[[], bool]) -> None:
        self._give_up = give_up
        self._conn: psycopg.Connection | None = None

    def open(self) -> None:
        delay = 0.2
        while True:
            try:
                self._conn = open_connection()
                return
            except psycopg.OperationalError as exc:
                if self._give_up():
                    raise
                logger.warning(
                    "Database unreachable (%s); retrying in %.1fs",
                    exc,
                    delay,
                    extra={"action": "db_reconnect"},
                )
                time.sleep(delay)
                delay = min(delay * 2, 5.0)

    def execute(self, statement: str, params: dict) -> None:
        with self._conn.cursor() as cur:
            cur.execute(statement, params)

    def fetch(self, statement: str, params: dict) -> list[tuple]:
        with self._conn.cursor() as cur:
            cur.execute(statement, params)
            return cur.fetchall()

    def fetch_in_transaction(self, *steps: tuple[str, dict | None]) -> list[list[tuple]]:
        """Run the statements in one transaction and one round trip (pipeline mode); each one's rows.

        No BEGIN and COMMIT: on an autocommit connection psycopg syncs a pipeline once, when it ends, and the
        server runs everything before a Sync as one transaction (each statement still with its own snapshot),
        which a failed statement aborts whole: then nothing is kept. psycopg still syncs when something is raised
        in the client between two statements (only an interrupt can be, here: the statements are sent one after
        another), which commits what was sent; for the claim that is at worst a claim the worker never runs,
        the dead worker's case that the lease rescue covers. Two statements fewer than BEGIN ... COMMIT per claim:
        `bench/drain_ab.py`, 4 rounds of 20,000 no-op jobs, 9,840 against 10,239 jobs/s."""
        with self._conn.pipeline():
            cursors = [self._conn.execute(statement, params) for statement, params in steps]
        return [cursor.fetchall() for cursor in cursors]

    def safely(self, step: Callable[[], T], default: T) -> T:
        """Run a database step; on a lost connection, reconnect and return `default` (the loop tries again)."""
        try:
            return step()
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            logger.warning("Database connection lost (%s); reconnecting", exc, extra={"action": "db_lost"})
            try:
                self._conn.close()
            except Exception:
                logger.debug("closing a broken connection failed", exc_info=True)
            self.open()
            return default

    def close(self) -> None:
        self._conn.close()


class _PreparedCursor(psycopg.Cursor):
    """Server-side binding in binary, every statement prepared: the enqueue CTE is parsed and planned once per
    connection, and big parameter arrays go over the wire without text escaping."""

    def execute(self, query, params=None, *, prepare=None, binary=None):
        return super().execute(query, params, prepare=True, binary=True if binary is None else binary)


def django_prepared_cursor(alias: str = "default"):
    """A cursor on Django's own connection (so it joins the caller's transaction) that binds parameters on the
    server and prepares statements, still wrapped by Django (query logging, execute wrappers).

    Poll-only mode (USE_LISTEN_NOTIFY off, meant for transaction-mode poolers) keeps Django's client-side cursor,
    since prepared statements do not survive a pooler's connection switching."""
    conn = connections[alias]
    if behind_transaction_pooler():
        return conn.cursor()
    conn.ensure_connection()
    conn.validate_thread_sharing()
    raw = _PreparedCursor(conn.connection)
    return conn.make_debug_cursor(raw) if conn.queries_logged else conn.make_cursor(raw)
