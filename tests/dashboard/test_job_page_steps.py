"""The job page shows each step's worker and time since its attempt started (`job_details.metadata`)."""

import re

from django.urls import reverse

from jobscheduler.models import JobStatus
from tests.factories import JobDetailFactory, JobFactory


def _timeline(body: str) -> list[str]:
    """The text of each step's "when" line, tags removed."""
    return [
        re.sub(r"<[^>]+>", "", line).strip() for line in re.findall(r'<div class="when">(.*?)</div>', body)
    ]


def test_steps_show_worker_and_duration_and_old_rows_show_neither(operator_client, acme):
    job = JobFactory(tenant=acme.tenant, status=JobStatus.COMPLETED)
    JobDetailFactory(job=job, step_name="execution_started", metadata={"attempt": 1, "workerId": "host-a:42"})
    JobDetailFactory(
        job=job,
        step_name="execution_completed",
        status=JobStatus.COMPLETED,
        metadata={"attempt": 1, "workerId": "host-a:42", "durationMs": 1500},
    )
    JobDetailFactory(job=job, step_name="written_before_0006", status=JobStatus.COMPLETED, metadata=None)
    body = operator_client.get(reverse("jobscheduler:job-detail", args=[job.job_id])).content.decode()
    lines = _timeline(body)
    assert len(lines) == 3
    assert lines[0].endswith("· attempt 1 · host-a:42")
    assert lines[1].endswith("· attempt 1 · host-a:42 · 1.5 s")
    assert lines[2].endswith("· attempt 1")
