import threading

import pytest

from jobscheduler import JobHandlerRegistry, JobRunnerFactory
from jobscheduler.exceptions import RunnerUnavailable


def test_unknown_runner_type_is_refused(settings):
    settings.JOB_RUNNER_TYPE = "celery"
    with pytest.raises(RunnerUnavailable) as err:
        JobRunnerFactory.get_instance()
    assert str(err.value) == "Unknown JOB_RUNNER_TYPE 'celery': expected one of pgboss, temporal"


def test_one_runner_per_process_even_under_threads(settings):
    settings.JOB_RUNNER_TYPE = "pgboss"
    seen = []
    barrier = threading.Barrier(8)

    def grab():
        barrier.wait()
        seen.append(JobRunnerFactory.get_instance())

    threads = [threading.Thread(target=grab) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(r) for r in seen}) == 1
    JobRunnerFactory.reset()
    assert JobRunnerFactory.get_instance() is not seen[0]


def test_runner_type_is_read_from_the_environment(settings, monkeypatch):
    del settings.JOB_RUNNER_TYPE
    monkeypatch.setenv("JOB_RUNNER_TYPE", "PGBOSS")
    assert JobRunnerFactory.get_instance().runner_type == "pgboss"


def test_installed_apps_jobs_modules_are_autodiscovered():
    # project/demo/jobs.py registers the seed's job names when the app registry is ready
    for name in ("generate-invoice", "invoice_zip", "expired-credits", "createNextTimePeriods"):
        assert JobHandlerRegistry.has(name)
