"""The one decision of how an attempt's end is recorded (both backends call it; test_same_record.py compares
the rows they write)."""

from __future__ import annotations

import json
import math
import uuid
from datetime import datetime

from jobscheduler import outcomes
from jobscheduler.exceptions import JobTimeout
from jobscheduler.states import Outcome

TENANT, JOB = uuid.uuid4(), uuid.uuid4()


def _raised(exc: BaseException) -> BaseException:
    try:
        raise exc
    except BaseException as caught:
        return caught


def test_an_error_is_type_colon_message_cut_to_the_limit():
    assert outcomes.error_text(RuntimeError("boom")) == "RuntimeError: boom"
    assert outcomes.error_text(RuntimeError()) == "RuntimeError"
    long = outcomes.error_text(ValueError("x" * 10_000))
    assert len(long) == outcomes.MAX_ERROR_CHARS
    assert long.startswith("ValueError: xxx") and long.endswith("\n...[truncated]")


def test_a_traceback_only_for_a_raised_exception():
    failed = outcomes.failed(TENANT, JOB, 1, _raised(KeyError("k")), will_retry=False)
    assert (
        failed.outcome == Outcome.FAILED
        and failed.error == "KeyError: 'k'"
        and failed.error_type == "KeyError"
    )
    assert failed.traceback.startswith("Traceback (most recent call last)")
    timeout = outcomes.failed(TENANT, JOB, 1, JobTimeout(outcomes.timeout_message(500)), will_retry=True)
    assert timeout.outcome == Outcome.RETRY and timeout.traceback is None
    assert timeout.error == "JobTimeout: Attempt exceeded its timeout of 500 ms"
    unknown = outcomes.failed(
        TENANT, JOB, 1, _raised(LookupError("x")), will_retry=False, with_traceback=False
    )
    assert unknown.traceback is None


def test_retry_timing_only_when_retried():
    retried = outcomes.failed(TENANT, JOB, 2, RuntimeError("x"), will_retry=True, retry_delay_ms=300)
    assert retried.retry_delay_ms == 300
    final = outcomes.failed(TENANT, JOB, 3, RuntimeError("x"), will_retry=False, retry_delay_ms=300)
    assert final.retry_delay_ms is None and final.next_at is None


def test_a_result_that_is_not_json_is_its_repr():
    assert outcomes.result_json(None) is None
    assert outcomes.result_json({"a": [1, 2.5, "x"]}) == '{"a": [1, 2.5, "x"]}'
    odd = {"when": datetime(2024, 1, 1), "ratio": math.nan}
    assert (
        json.loads(outcomes.result_json(odd)) == "{'when': datetime.datetime(2024, 1, 1, 0, 0), 'ratio': nan}"
    )
    assert json.loads(outcomes.result_json(math.inf)) == "inf"
    assert outcomes.result_value(object()).startswith("<object object at ")
    huge = json.loads(outcomes.result_json({"s": set(range(5000))}))
    assert len(huge) == outcomes.MAX_ERROR_CHARS and huge.endswith("...[truncated]")


def test_a_cancel_without_a_reason_gets_the_default():
    assert outcomes.cancelled(TENANT, JOB, 1).error == "Cancelled by request"
    assert outcomes.cancelled(TENANT, JOB, 1, "not needed").error == "not needed"
