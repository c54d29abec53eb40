"""The factory with JOB_RUNNER_TYPE=temporal: a connected runner, or a bounded, visible fallback to pgboss."""

from __future__ import annotations

import threading
import time

import pytest
from django.test import override_settings

from jobscheduler.exceptions import RunnerUnavailable
from jobscheduler.runners.factory import JobRunnerFactory
from jobscheduler.temporal.runner import TemporalJobRunner

from .conftest import free_port, wait_until

pytestmark = [pytest.mark.temporal, pytest.mark.django_db]


def _settings(address, fallback):
    return override_settings(
        JOB_RUNNER_TYPE="temporal",
        JOB_RUNNER_FALLBACK_TO_PGBOSS=fallback,
        TEMPORAL_ADDRESS=address,
        JOBSCHEDULER={"TEMPORAL_CONNECT_TIMEOUT_SECONDS": 1.0},
    )


def test_unreachable_temporal_without_fallback_raises_in_bounded_time():
    address = f"127.0.0.1:{free_port()}"
    with _settings(address, False):
        started = time.monotonic()
        with pytest.raises(RunnerUnavailable, match=f"Temporal is unreachable at {address}"):
            JobRunnerFactory.get_instance()
        assert time.monotonic() - started < 5
        started = time.monotonic()
        with pytest.raises(RunnerUnavailable, match="not retrying"):  # no tight reconnect loop
            JobRunnerFactory.get_instance()
        assert time.monotonic() - started < 0.5


def test_unreachable_temporal_with_fallback_gives_a_flagged_pgboss_runner(caplog):
    address = f"127.0.0.1:{free_port()}"
    with _settings(address, True):
        started = time.monotonic()
        runner = JobRunnerFactory.get_instance()
        assert time.monotonic() - started < 5
    assert runner.runner_type == "pgboss"
    assert runner.fallback_active is True
    assert address in runner.fallback_reason
    assert any(address in r.getMessage() and r.levelname == "WARNING" for r in caplog.records)


def test_with_temporal_down_a_temporal_job_is_never_handed_to_the_pgboss_runner():
    address = f"127.0.0.1:{free_port()}"
    with _settings(address, True):
        assert JobRunnerFactory.get_instance().fallback_active
        with pytest.raises(RunnerUnavailable, match=f"Temporal is unreachable at {address}"):
            JobRunnerFactory.for_runner_type("temporal")
        assert JobRunnerFactory.for_runner_type("pgboss").runner_type == "pgboss"


def test_reachable_temporal_gives_the_temporal_runner(temporal_address, task_queue, temporal_worker):
    with _settings(temporal_address, True), override_settings(TEMPORAL_JOB_TASK_QUEUE=task_queue):
        runner = JobRunnerFactory.get_instance()
        temporal = JobRunnerFactory.for_runner_type("temporal")
        assert isinstance(temporal, TemporalJobRunner) and temporal.address == temporal_address
        assert runner.runner_type == "temporal"
        wait_until(lambda: not runner.unserved_queues(), timeout=15)  # the session worker's first polls
        assert runner.fallback_active is False and runner.is_healthy()
    JobRunnerFactory.reset()  # closes the runner's loop thread
    assert not any(t.name == "jobscheduler-temporal" and t.is_alive() for t in threading.enumerate())
