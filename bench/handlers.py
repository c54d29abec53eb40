"""The bench's job handlers: a no-op (throughput) and a probe that records when it started (latency).

Registered both in the driver (schedule_job validates the name) and in every bench worker process. The probe
records its start with bench.measure.record_start, as every peer's probe does.
"""

from __future__ import annotations

from bench import measure
from jobscheduler import RetryPolicy, job_handler

ONE_ATTEMPT = RetryPolicy(max_attempts=1)


@job_handler("noop", retry=ONE_ATTEMPT)
def noop(job_id, data):
    return None


@job_handler("probe", retry=ONE_ATTEMPT)
def probe(job_id, data):
    measure.record_start(float(data["t"]))
