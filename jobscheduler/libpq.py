"""One statement straight through libpq on Django's own connection: the hot paths of a one-by-one enqueue (pgboss)
and of a Temporal start's two writes to the record.

Why: a one-row enqueue is a round trip of a fraction of a millisecond on the server, and psycopg's cursor layer
(query conversion, parameter dumping, prepared-statement bookkeeping and result loading, in Python) plus Django's
cursor wrapper cost more client CPU than that: about 0.4 ms a call against 0.1 ms for the same prepared
statement sent with `PGconn.exec_prepared` (docs/performance.md, "What limits the numbers"). Client CPU is not
free here: on a small machine the client, the server and the commit's flush share the same cores.

The statement still runs on Django's connection, in the caller's transaction, and raises psycopg's own error
classes wrapped by Django (`django.db.IntegrityError`, ...), so to a caller nothing differs but the time. It
falls back to an ordinary Django cursor (same statement, same result) whenever going around psycopg would lose
something:

- behind a transaction-mode pooler (poll-only mode): no server-side state may be relied on;
- when Django logs or wraps queries (`DEBUG`, `CaptureQueriesContext`, `connection.execute_wrapper`): the
  statement must be seen there;
- when psycopg would first have to open a transaction (Django inside `atomic()` before any statement: psycopg
  sends its own `BEGIN`, with the connection's isolation level), or the session is not idle or in a healthy
  transaction (psycopg raises the right error).

In autocommit the statement is prepared once per server session under its own name (psycopg's prepared
statements are named `_pg3_*`, so they never collide); if it was dropped meanwhile (`DISCARD ALL`), it is
prepared again and the call retried, which is safe because a failed statement in autocommit changed nothing.
Inside a transaction a failed statement would abort the caller's transaction, so there it goes unnamed
(`exec_params`: parsed and planned on each call, no session state at all).
"""

from __future__ import annotations

import re
import uuid
import weakref
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from django.db import connections
from psycopg import pq

from .conf import setting

_PLACEHOLDER = re.compile(r"%\((\w+)\)s|%%")

#: SQLSTATE 26000, invalid_sql_statement_name: the named statement is not prepared in this session.
_NOT_PREPARED = b"26000"

#: Per libpq connection, the names prepared on it (a reconnect makes a new PGconn, with nothing prepared).
_prepared: weakref.WeakKeyDictionary[Any, set[bytes]] = weakref.WeakKeyDictionary()


@dataclass(frozen=True, slots=True)
class Statement:
    """A statement in psycopg's `%(name)s` style (the fallback's form) and its libpq form (`$1..$n`)."""

    name: bytes
    text: str
    query: bytes
    params: tuple[str, ...]

    @classmethod
    def of(cls, name: str, text: str) -> Statement:
        order: list[str] = []

        def number(match: re.Match[str]) -> str:
            param = match.group(1)
            if param is None:
                return "%"
            if param not in order:
                order.append(param)
            return f"${order.index(param) + 1}"

        query = _PLACEHOLDER.sub(number, text)
        return cls(name=name.encode(), text=text, query=query.encode(), params=tuple(order))


def behind_transaction_pooler() -> bool:
    """Poll-only mode (USE_LISTEN_NOTIFY off) is the mode for a transaction-mode pooler (PgBouncer): each
    transaction may run on another server connection, so nothing may rely on session state."""
    return not setting("USE_LISTEN_NOTIFY")


def first_value(statement: Statement, params: dict[str, Any], alias: str = "default") -> str | None:
    """The first column of the statement's first row as text (None: no row, or NULL, or a statement that
    returns no rows at all)."""
    conn = connections[alias]
    conn.ensure_connection()
    conn.validate_thread_sharing()
    raw = conn.connection
    pgconn = raw.pgconn
    if not _direct(conn, raw, pgconn):
        with conn.cursor() as cur:
            cur.execute(statement.text, params)
            row = cur.fetchone() if cur.description else None
        return None if row is None or row[0] is None else str(row[0])
    values = [_text(params[name]) for name in statement.params]
    with conn.wrap_database_errors:
        result = _run(raw, pgconn, statement, values)
    if result.ntuples == 0:
        return None
    value = result.get_value(0, 0)
    return None if value is None else value.decode()


def execute(statement: Statement, params: dict[str, Any], alias: str = "default") -> None:
    """Run a statement whose rows, if any, nobody reads."""
    first_value(statement, params, alias)


def _direct(conn, raw: psycopg.Connection, pgconn) -> bool:
    if behind_transaction_pooler() or conn.queries_logged or conn.execute_wrappers:
        return False
    if pgconn.pipeline_status != pq.PipelineStatus.OFF:
        return False
    status = pgconn.transaction_status
    if status == pq.TransactionStatus.IDLE:
        return raw.autocommit
    return status == pq.TransactionStatus.INTRANS


def _run(raw: psycopg.Connection, pgconn, statement: Statement, values: list[bytes | None]):
    if pgconn.transaction_status == pq.TransactionStatus.INTRANS:
        return _check(raw, pgconn.exec_params(statement.query, values))
    names = _prepared.setdefault(pgconn, set())
    if statement.name not in names:
        _check(raw, pgconn.prepare(statement.name, statement.query))
        names.add(statement.name)
    result = pgconn.exec_prepared(statement.name, values)
    if (
        result.status == pq.ExecStatus.FATAL_ERROR
        and result.error_field(pq.DiagnosticField.SQLSTATE) == _NOT_PREPARED
    ):
        _check(raw, pgconn.prepare(statement.name, statement.query))
        result = pgconn.exec_prepared(statement.name, values)
    return _check(raw, result)


def _check(raw: psycopg.Connection, result):
    if result.status in (pq.ExecStatus.TUPLES_OK, pq.ExecStatus.COMMAND_OK):
        return result
    if result.status == pq.ExecStatus.FATAL_ERROR:
        raise psycopg.errors.error_from_result(result, encoding=raw.info.encoding)
    raise psycopg.InterfaceError(f"unexpected result status {pq.ExecStatus(result.status).name}")


def _text(value: Any) -> bytes | None:
    """A parameter in PostgreSQL's text input form (every placeholder of a Statement carries its own cast).
    The exact types first: a dozen parameters a call, on the hot path."""
    kind = type(value)
    if kind is str:
        return value.encode()
    if value is None:
        return None
    if kind is uuid.UUID or kind is int:
        return str(value).encode()
    if isinstance(value, bool):
        return b"true" if value else b"false"
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("a timestamp parameter must be timezone-aware")
        return value.isoformat().encode()
    if isinstance(value, str | int | uuid.UUID):  # subclasses: StrEnum and IntEnum print their value
        return str(value).encode()
    raise TypeError(f"no text form for a {type(value).__name__} parameter")
