"""The bench's job handlers: a no-op (throughput) and a probe that records when it started (latency).

Registered both in the driver (schedule_job validates the name) and in every bench worker process. The probe
appends "t_enqueue t_start" to $BENCH_LAT_FILE, the peer harness's format, with one O_APPEND write so lines
from concurrent handler threads never interleave.
"""

from __future__ import annotations

import os
import time

from jobscheduler import RetryPolicy, job_handler

ONE_ATTEMPT = RetryPolicy(max_attempts=1)


@job_handler("noop", retry=ONE_ATTEMPT)
def noop(job_id, data):
    return None


@job_handler("probe", retry=ONE_ATTEMPT)
def probe(job_id, data):
    t = time.time()
    line = f"{float(data['t'])!r} {t!r}\n".encode()
    fd = os.open(os.environ["BENCH_LAT_FILE"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)
