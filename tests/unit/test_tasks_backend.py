"""The task backend's configuration, capability checks and task resolution: no database, no worker."""

from __future__ import annotations

from datetime import datetime

import pytest
from django.core.exceptions import ImproperlyConfigured

from jobscheduler.exceptions import JobHandlerNotFound, NotARunnableTask
from jobscheduler.registry import JobHandlerRegistry, RetryPolicy
from jobscheduler.tasks import InvalidTask, JobSchedulerBackend, exception_path_of, resolve_task

try:
    from django.tasks import task
except ImportError:
    from django_tasks import task


def module_level(x):
    return x


def needs_context(x):
    return x


def in_main():
    return None


in_main.__module__ = "__main__"


@pytest.fixture
def two_backends(settings):
    settings.TASKS = {
        "default": {"BACKEND": "jobscheduler.tasks.JobSchedulerBackend", "OPTIONS": {"TIMEOUT_MS": 1234}},
        "immediate": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"},
    }


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"TENANT": "x"},
            "Unknown OPTIONS of task backend 'b': TENANT (expected RETRY, TENANT_ID, TIMEOUT_MS)",
        ),
        ({"TENANT_ID": "acme"}, "OPTIONS['TENANT_ID'] of task backend 'b' must be a UUID, got 'acme'"),
        (
            {"RETRY": 3},
            "OPTIONS['RETRY'] of task backend 'b' must be a RetryPolicy or a dict of its fields, got int",
        ),
        (
            {"RETRY": {"max_attempts": 0}},
            "OPTIONS['RETRY'] of task backend 'b': max_attempts must be an integer >= 1, got 0",
        ),
        (
            {"RETRY": {"attempts": 2}},
            "OPTIONS['RETRY'] of task backend 'b': RetryPolicy.__init__() got an unexpected keyword argument "
            "'attempts'",
        ),
        ({"TIMEOUT_MS": 0}, "OPTIONS['TIMEOUT_MS'] of task backend 'b' must be a positive integer, got 0"),
    ],
)
def test_bad_options_are_a_configuration_error(options, message):
    with pytest.raises(ImproperlyConfigured) as refused:
        JobSchedulerBackend("b", {"OPTIONS": options})
    assert str(refused.value) == message


def test_options_become_the_spec_of_its_tasks(two_backends):
    backend = JobSchedulerBackend("b", {"OPTIONS": {"RETRY": {"max_attempts": 7}, "TIMEOUT_MS": 900}})
    spec = backend.handler_spec(task(module_level))
    assert spec.name == "tests.unit.test_tasks_backend.module_level"
    assert spec.retry == RetryPolicy(max_attempts=7) and spec.timeout_ms == 900 and not spec.is_async


def test_every_capability_is_supported():
    assert JobSchedulerBackend.supports_defer and JobSchedulerBackend.supports_async_task
    assert JobSchedulerBackend.supports_get_result and JobSchedulerBackend.supports_priority


def test_the_task_api_checks_keep_their_messages(two_backends):
    cases = [
        (lambda: task(priority=101)(module_level), "priority must be a whole number between -100 and 100."),
        (
            lambda: task(takes_context=True)(needs_context),
            "Task takes context but does not have a first argument of 'context'.",
        ),
        (
            lambda: task(module_level).using(run_after=datetime(2030, 1, 1)),
            "run_after must be an aware datetime.",
        ),
        (
            lambda: task(module_level).using(queue_name="elsewhere"),
            "Queue 'elsewhere' is not valid for backend.",
        ),
        (
            lambda: task(in_main),
            "Task function must be importable by the worker: it is defined in __main__, move it to a module.",
        ),
    ]
    for make, message in cases:
        with pytest.raises(InvalidTask) as refused:
            make()
        assert str(refused.value) == message


def test_only_tasks_of_our_backend_resolve(two_backends, monkeypatch):
    import tests.unit.test_tasks_backend as this

    fn = this.module_level
    assert resolve_task("t.missing") is None and resolve_task("nodots") is None
    assert resolve_task("tests.unit.test_tasks_backend.module_level") is None  # a plain function
    with pytest.raises(JobHandlerNotFound) as plain:
        JobHandlerRegistry.get("tests.unit.test_tasks_backend.module_level")
    assert str(plain.value) == "No handler registered for job: tests.unit.test_tasks_backend.module_level"

    monkeypatch.setattr(this, "module_level", task(fn))
    spec = JobHandlerRegistry.get("tests.unit.test_tasks_backend.module_level")
    assert spec.timeout_ms == 1234 and JobHandlerRegistry.find("tests.unit.test_tasks_backend.module_level")

    monkeypatch.setattr(this, "module_level", task(backend="immediate")(fn))
    with pytest.raises(NotARunnableTask) as other:
        JobHandlerRegistry.get("tests.unit.test_tasks_backend.module_level")
    assert str(other.value) == (
        "Cannot run job tests.unit.test_tasks_backend.module_level: its task backend 'immediate' is "
        "django_tasks.backends.immediate.ImmediateBackend, not jobscheduler.tasks.JobSchedulerBackend"
    )
    with pytest.raises(NotARunnableTask) as broken:
        resolve_task("tests.support.broken_tasks.anything")
    assert str(broken.value) == (
        "Cannot run job tests.support.broken_tasks.anything: importing it failed "
        "(RuntimeError: this module fails to import)"
    )


def test_error_paths_of_failures_the_record_names_by_class_name():
    assert exception_path_of("ValueError") == "builtins.ValueError"
    assert exception_path_of("JobTimeout") == "jobscheduler.exceptions.JobTimeout"
    assert exception_path_of("LeaseExpired") == "jobscheduler.exceptions.AttemptLost"
    assert exception_path_of("ActivityTimeout.START_TO_CLOSE") == "jobscheduler.exceptions.AttemptLost"
