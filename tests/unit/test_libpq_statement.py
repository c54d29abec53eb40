"""jobscheduler/libpq.py's conversion of a psycopg-style statement to libpq's numbered placeholders (pure logic), and
the text form of its parameters."""

import uuid
from datetime import UTC, datetime

import pytest

from jobscheduler import libpq
from jobscheduler.queue import sql
from jobscheduler.states import RunnerType


def test_placeholders_are_numbered_by_first_use_and_percent_signs_unescaped():
    st = libpq.Statement.of("s", "SELECT %(a)s::int, %(b)s, %(a)s, format('%%s', %(c)s)")
    assert st.query == b"SELECT $1::int, $2, $1, format('%s', $3)"
    assert st.params == ("a", "b", "c")
    assert st.name == b"s" and st.text.startswith("SELECT %(a)s")


def test_the_enqueue_statement_casts_every_parameter():
    st = libpq.Statement.of("e", sql.ENQUEUE_ONE)
    assert set(st.params) == {
        "job_id", "tenant", "type", "queue", "priority", "run_at", "max_attempts", "singleton_key",
        "metadata", "user_id", "status", "runner_type",
    }  # fmt: skip
    text = st.query.decode()
    for n in range(1, len(st.params) + 1):
        assert f"${n}::" in text, f"${n} has no cast: libpq sends it untyped"


def test_parameters_in_text_form():
    u = uuid.UUID("01234567-89ab-7def-8123-456789abcdef")
    assert libpq._text(u) == b"01234567-89ab-7def-8123-456789abcdef"
    assert libpq._text(None) is None and libpq._text(True) == b"true" and libpq._text(5) == b"5"
    assert libpq._text(RunnerType.PGBOSS) == b"pgboss" and libpq._text("é") == "é".encode()
    assert libpq._text(datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC)) == b"2026-01-02T03:04:05.000006+00:00"
    with pytest.raises(ValueError, match="a timestamp parameter must be timezone-aware"):
        libpq._text(datetime(2026, 1, 2))
    with pytest.raises(TypeError, match="no text form for a list parameter"):
        libpq._text([1])
