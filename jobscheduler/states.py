"""The names the record's state machine is written in, for Python and SQL alike.

`JobStatus` (models.py) is the `job_status` column. These are the other two vocabularies: how an attempt ended
(`Outcome`, the input of the record's finish statement) and which backend ran a job (`RunnerType`, the
`jobs.runner_type` column). SQL that branches on them is rendered from these enums (`sql_literal`), so a
spelling lives in one place.
"""

from __future__ import annotations

from enum import StrEnum
from string import Template


class Outcome(StrEnum):
    """How one attempt ended."""

    COMPLETED = "completed"
    FAILED = "failed"
    #: Failed, and the retry policy allows another attempt: the job goes back to `queued`.
    RETRY = "retry"
    CANCELLED = "cancelled"
    #: A shutting-down worker gave the job back without using up the attempt.
    RELEASED = "released"

    @property
    def is_final(self) -> bool:
        return self in (Outcome.COMPLETED, Outcome.FAILED, Outcome.CANCELLED)


class RunnerType(StrEnum):
    """The backend that runs a job (`jobs.runner_type`)."""

    PGBOSS = "pgboss"
    TEMPORAL = "temporal"


def sql_literal(value: StrEnum) -> str:
    """A quoted SQL literal of an enum value (the values are fixed identifiers, never user input)."""
    return "'" + str(value).replace("'", "''") + "'"


def sql_list(values: list[StrEnum] | tuple[StrEnum, ...]) -> str:
    return ", ".join(sql_literal(v) for v in values)


_SQL_NAMES = {f"OUTCOME_{o.name}": sql_literal(o) for o in Outcome} | {
    f"RUNNER_{r.name}": sql_literal(r) for r in RunnerType
}


def render_sql(text: str) -> str:
    """SQL with `$OUTCOME_COMPLETED`, `$RUNNER_PGBOSS`, ... replaced by the enums' literals."""
    return Template(text).substitute(_SQL_NAMES)
