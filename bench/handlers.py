"""The bench's job handlers: a no-op (throughput), a probe that records when it started (latency), and the
fan-in step of the workflow workload, which reads what its dependencies returned as Celery's chord callback is
handed its header's results.

Registered both in the driver (schedule_job validates the name) and in every bench worker process. The probe
records its start with bench.measure.record_start, as every peer's probe does.
"""

from __future__ import annotations

from bench import measure
from jobscheduler import RetryPolicy, current_job, job_handler

ONE_ATTEMPT = RetryPolicy(max_attempts=1)


@job_handler("noop", retry=ONE_ATTEMPT)
def noop(job_id, data):
    return None


@job_handler("probe", retry=ONE_ATTEMPT)
def probe(job_id, data):
    measure.record_start(float(data["t"]))


@job_handler("noop_fanin", retry=ONE_ATTEMPT)
def noop_fanin(job_id, data):
    """The fan-in after every step of the fan-out: how many results it was handed (the bench checks it)."""
    return len(current_job().dependency_results)
