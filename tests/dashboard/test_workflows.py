"""The workflow page: the graph in plain SVG with each step's status, links both ways between job and workflow,
the history's workflow filter, tenant scoping, and retry from the dashboard resuming a workflow."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

import tests.support.handlers  # noqa: F401  (t.echo, t.noop)
from jobscheduler import Workflow
from jobscheduler.dashboard.graph import MAX_ROWS, depths, layout
from jobscheduler.models import Job, QueueJob
from jobscheduler.runners.factory import JobRunnerFactory
from jobscheduler.workflows import StepStatus
from tests.dashboard.conftest import login

pytestmark = pytest.mark.django_db


def month_end(tenant, invoices: int = 3):
    wf = Workflow("month-end", tenant_id=tenant)
    steps = [wf.add("t.echo", {"cycle": i}) for i in range(invoices)]
    archive = wf.add("t.noop", {}, after=steps)
    email = wf.add("t.echo", {"mail": True}, after=[archive])
    return wf, steps, archive, email, JobRunnerFactory.get_instance().schedule_workflow(wf)


def page(client, workflow_id):
    return client.get(reverse("jobscheduler:workflow-detail", args=[workflow_id]))


def test_the_graph_shows_every_step_with_its_status_and_links(operator_client, acme):
    _wf, invoices, archive, email, result = month_end(acme.tenant)
    response = page(operator_client, result.workflow_id)
    assert response.status_code == 200
    html = response.content.decode()
    assert "<svg" in html and 'aria-label="Dependency graph of month-end"' in html
    for job_id in result.job_ids:
        assert reverse("jobscheduler:job-detail", args=[job_id]) in html
    nodes = {n.job_id: n for n in response.context["graph"].nodes}
    assert {nodes[str(s.job_id)].status for s in invoices} == {"queued"}
    assert nodes[str(archive.job_id)].status == "pending"
    assert nodes[str(invoices[0].job_id)].x < nodes[str(archive.job_id)].x < nodes[str(email.job_id)].x
    assert len(response.context["graph"].edges) == 4  # three into the archive, one into the e-mail
    assert len(re.findall(r'<a href="[^"]+" class="node queued"', html)) == 3
    assert response.context["status"].status == "processing"


def test_job_page_links_to_its_workflow_and_dependencies(operator_client, acme):
    _wf, invoices, archive, _email, result = month_end(acme.tenant, invoices=2)
    html = operator_client.get(reverse("jobscheduler:job-detail", args=[archive.job_id])).content.decode()
    assert reverse("jobscheduler:workflow-detail", args=[result.workflow_id]) in html
    assert ">month-end</a>" in html
    for step in invoices:
        assert reverse("jobscheduler:job-detail", args=[step.job_id]) in html


def test_history_filters_by_workflow(operator_client, acme):
    _wf, _i, _a, _e, result = month_end(acme.tenant, invoices=2)
    other = JobRunnerFactory.get_instance().schedule_job("t.echo", {}, tenant_id=acme.tenant)
    response = operator_client.get(reverse("jobscheduler:job-list"), {"workflow": result.workflow_id})
    listed = {str(b.record.job_id) for b in response.context["table"].page.object_list}
    assert listed == set(result.job_ids) and other.job_id not in listed


def test_another_tenants_workflow_is_not_found(acme, globex, make_user):
    _wf, _i, _a, _e, result = month_end(globex.tenant)
    client = login(make_user(acme, "view_job"))
    assert page(client, result.workflow_id).status_code == 404
    response = client.get(reverse("jobscheduler:job-list"), {"workflow": result.workflow_id})
    assert list(response.context["table"].page.object_list) == []


def test_retry_from_the_dashboard_resumes_the_workflow(operator_client, acme):
    runner = JobRunnerFactory.get_instance()
    wf = Workflow("resume", tenant_id=acme.tenant)
    root = wf.add("t.echo", {})
    child = wf.add("t.echo", {}, after=[root])
    runner.schedule_workflow(wf)
    assert runner.cancel_job(root.job_id, acme.tenant) is True  # a queued root: its dependent is cancelled
    assert Job.objects.get(job_id=child.job_id).meta["cancelReason"] == (
        f"Cancelled: dependency t.echo (job {root.job_id}) was cancelled"
    )
    refused = operator_client.post(reverse("jobscheduler:job-retry", args=[child.job_id]), follow=True)
    assert (
        f"Job {child.job_id} was cancelled because its dependency {root.job_id} did not complete: retry that "
        "step instead"
    ) in refused.content.decode()

    response = operator_client.post(reverse("jobscheduler:job-retry", args=[root.job_id]))
    retry_id = response.url.rstrip("/").rsplit("/", 1)[-1]
    resumed = Job.objects.get(job_id=child.job_id)
    assert resumed.status == "pending" and resumed.meta["dependsOn"] == [retry_id]
    assert QueueJob.objects.get(job_id=child.job_id).blocked_by is None
    status = runner.get_workflow_status(wf.workflow_id, acme.tenant)
    assert status.status == "processing" and status.counts == {"queued": 1, "pending": 1}


def _step(job_id: str, *deps: str) -> StepStatus:
    return StepStatus(job_id=job_id, job_name="t", status="queued", depends_on=list(deps))


def test_layout_of_a_long_chain_and_a_wide_fan_out():
    chain = [_step("0")] + [_step(str(i), str(i - 1)) for i in range(1, 1500)]
    assert depths(chain)["1499"] == 1499  # no recursion limit
    fan = [_step(f"i{i}") for i in range(1000)] + [_step("zip", *[f"i{i}" for i in range(1000)])]
    graph = layout(fan)
    assert len(graph.nodes) == MAX_ROWS + 1  # a column of MAX_ROWS - 1 steps, "+ n more", and the zip
    more = [n for n in graph.nodes if n.more]
    assert more[0].label == f"+ {1000 - MAX_ROWS + 1} more"
    assert len(graph.edges) == MAX_ROWS  # one line per drawn source into the zip


def test_bulk_retry_skips_a_step_cancelled_because_of_a_dependency(operator_client, acme):
    runner = JobRunnerFactory.get_instance()
    wf = Workflow("bulk", tenant_id=acme.tenant)
    root = wf.add("t.echo", {})
    child = wf.add("t.echo", {}, after=[root])
    runner.schedule_workflow(wf)
    runner.cancel_job(root.job_id, acme.tenant)
    response = operator_client.post(
        reverse("jobscheduler:job-bulk"),
        {"action": "retry", "job_ids": [str(child.job_id), str(root.job_id)]},
        follow=True,
    )
    assert response.status_code == 200
    assert Job.objects.get(job_id=child.job_id).status == "pending"  # resumed by the root's retry
    assert Job.objects.filter(metadata__retryOf=str(root.job_id)).count() == 1
    assert not Job.objects.filter(metadata__retryOf=str(child.job_id)).exists()
