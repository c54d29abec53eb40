"""pytest fixtures for a site's own tests: add `pytest_plugins = ["jobscheduler.pytest_plugin"]` to the root
conftest.py (with pytest-django). See `jobscheduler.testing` and docs/testing.md."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from .testing import CapturedJobs


@pytest.fixture
def scheduled_jobs(db) -> Iterator[CapturedJobs]:
    """What the test schedules from its start, on pgboss whatever JOB_RUNNER_TYPE says; `.run()` runs it
    in-process through the real execution path (`jobscheduler.testing.run_jobs`)."""
    from .testing import capture_jobs  # the models need Django set up, which pytest-django does first

    with capture_jobs() as captured:
        yield captured
