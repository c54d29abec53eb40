import pytest

from jobscheduler import JobHandlerRegistry, RetryPolicy, job_handler
from jobscheduler.exceptions import HandlerAlreadyRegistered, InvalidRetryPolicy, JobHandlerNotFound


def noop(job_id, data):
    return None


def test_register_get_has_names():
    spec = JobHandlerRegistry.register("t-reg", noop, retry=RetryPolicy(max_attempts=5), timeout_ms=1234)
    assert JobHandlerRegistry.get("t-reg") is spec
    assert spec.retry.max_attempts == 5 and spec.timeout_ms == 1234 and not spec.is_async
    assert JobHandlerRegistry.has("t-reg") and not JobHandlerRegistry.has("t-missing")
    assert "t-reg" in JobHandlerRegistry.names()


def test_a_job_name_longer_than_the_type_column_is_refused_at_registration():
    JobHandlerRegistry.register("n" * 255, noop)
    with pytest.raises(ValueError) as err:
        JobHandlerRegistry.register("n" * 256, noop)
    assert str(err.value) == "A job name is at most 255 characters, got 256"
    assert not JobHandlerRegistry.has("n" * 256)


def test_defaults_come_from_settings(settings):
    settings.JOBSCHEDULER = {"DEFAULT_TIMEOUT_MS": 777}
    spec = JobHandlerRegistry.register("t-defaults", noop)
    assert spec.timeout_ms == 777
    assert spec.retry == RetryPolicy()


def test_registering_twice_raises_unless_replace():
    JobHandlerRegistry.register("t-twice", noop)
    with pytest.raises(HandlerAlreadyRegistered) as err:
        JobHandlerRegistry.register("t-twice", noop)
    assert (
        str(err.value) == "A handler is already registered for job: t-twice (pass replace=True to replace it)"
    )
    JobHandlerRegistry.register("t-twice", noop, replace=True, timeout_ms=5)
    assert JobHandlerRegistry.get("t-twice").timeout_ms == 5


def test_unknown_handler_message():
    with pytest.raises(JobHandlerNotFound) as err:
        JobHandlerRegistry.get("nope")
    assert str(err.value) == "No handler registered for job: nope"


def test_decorator_and_async_detection():
    @job_handler("t-async", timeout_ms=10)
    async def handler(job_id, data):
        return 1

    assert JobHandlerRegistry.get("t-async").is_async
    assert JobHandlerRegistry.get("t-async").handler is handler


def test_retry_policy_backoff():
    policy = RetryPolicy(
        max_attempts=5, backoff_coefficient=2.0, initial_interval_ms=100, max_interval_ms=500
    )
    assert [policy.delay_ms(n, jitter=0) for n in range(1, 6)] == [100, 200, 400, 500, 500]
    for n in range(1, 4):
        assert 0.9 * policy.delay_ms(n, jitter=0) <= policy.delay_ms(n) <= 1.1 * policy.delay_ms(n, jitter=0)


def test_retry_policy_non_retryable_by_name():
    policy = RetryPolicy(non_retryable_errors=["ValueError", "builtins.KeyError"])
    assert not policy.is_retryable(ValueError("x"))
    assert not policy.is_retryable(KeyError("x"))
    assert policy.is_retryable(RuntimeError("x"))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_attempts": 0}, "max_attempts must be an integer >= 1, got 0"),
        ({"backoff_coefficient": 0.5}, "backoff_coefficient must be >= 1, got 0.5"),
        (
            {"initial_interval_ms": 10, "max_interval_ms": 5},
            "max_interval_ms (5) must be >= initial_interval_ms (10)",
        ),
        (
            {"non_retryable_errors": "ValueError"},
            "non_retryable_errors must be a list of exception class names",
        ),
    ],
)
def test_retry_policy_validation(kwargs, message):
    with pytest.raises(InvalidRetryPolicy) as err:
        RetryPolicy(**kwargs)
    assert str(err.value) == message


def test_retry_policy_is_frozen():
    with pytest.raises(AttributeError):
        RetryPolicy().max_attempts = 9
