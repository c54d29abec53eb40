"""A workflow is validated before anything is written: each error with its exact message, and no row."""

import uuid

import pytest

from jobscheduler import JobRunnerFactory, Workflow
from jobscheduler.exceptions import InvalidJobData, InvalidWorkflow, JobHandlerNotFound
from jobscheduler.models import Job, QueueJob, WorkflowDependency
from jobscheduler.models import Workflow as WorkflowRow

pytestmark = pytest.mark.django_db


@pytest.fixture
def runner():
    return JobRunnerFactory.get_instance()


def nothing_written() -> bool:
    return not (
        Job.objects.exists()
        or QueueJob.objects.exists()
        or WorkflowDependency.objects.exists()
        or WorkflowRow.objects.exists()
    )


def refused(runner, wf, error=InvalidWorkflow) -> str:
    with pytest.raises(error) as info:
        runner.schedule_workflow(wf)
    assert nothing_written()
    return str(info.value)


def test_a_cycle_is_named_step_by_step(runner, tenant):
    wf = Workflow("loop", tenant_id=tenant)
    first = wf.add("t.echo", {})
    second = wf.add("t.noop", {}, after=[first])
    wf.add("t.echo", {}, after=[second])
    first.after(second)
    assert refused(runner, wf) == (
        "Workflow 'loop' has a dependency cycle: step 1 (t.echo) -> step 2 (t.noop) -> step 1 (t.echo) "
        "(each waits for the next)"
    )


def test_a_step_waiting_for_itself_is_a_cycle(runner, tenant):
    wf = Workflow("self", tenant_id=tenant)
    wf.add("t.echo", {}).after(wf.steps[0])
    assert refused(runner, wf) == (
        "Workflow 'self' has a dependency cycle: step 1 (t.echo) -> step 1 (t.echo) (each waits for the next)"
    )


def test_an_unknown_handler(runner, tenant):
    wf = Workflow("unknown", tenant_id=tenant)
    first = wf.add("t.echo", {})
    wf.add("no-such-job", {}, after=[first])
    assert refused(runner, wf, JobHandlerNotFound) == "No handler registered for job: no-such-job"


def test_a_dependency_on_a_step_of_another_workflow(runner, tenant):
    other = Workflow("other", tenant_id=tenant)
    foreign = other.add("t.echo", {})
    wf = Workflow("mine", tenant_id=tenant)
    wf.add("t.noop", {}, after=[foreign])
    assert refused(runner, wf) == (
        "Workflow 'mine': step 1 (t.noop) depends on step 1 (t.echo) of workflow 'other'; "
        "a step may only depend on steps of its own workflow"
    )


def test_a_dependency_on_a_step_of_another_tenant(runner, tenant, other_tenant):
    other = Workflow("theirs", tenant_id=other_tenant)
    foreign = other.add("t.echo", {})
    wf = Workflow("mine", tenant_id=tenant)
    wf.add("t.echo", {})
    wf.add("t.noop", {}, after=[foreign])
    assert refused(runner, wf) == (
        "Workflow 'mine': step 2 (t.noop) depends on step 1 (t.echo) of workflow 'theirs' of another tenant; "
        "a step may only depend on steps of its own workflow"
    )


def test_a_dependency_on_an_existing_job_id(runner, tenant):
    existing = runner.schedule_job("t.echo", {}, tenant_id=tenant)
    Job.objects.all().delete()
    QueueJob.objects.all().delete()
    wf = Workflow("ids", tenant_id=tenant)
    wf.add("t.echo", {}, after=[existing.job_id])
    assert refused(runner, wf) == (
        f"Workflow 'ids': step 1 (t.echo) depends on {existing.job_id!r}, which is not a step of this workflow "
        "(pass the Step that add() returned)"
    )


def test_a_step_of_another_tenant_in_its_data(runner, tenant, other_tenant):
    wf = Workflow("mixed", tenant_id=tenant)
    wf.add("t.echo", {"tenantId": str(other_tenant)})
    assert refused(runner, wf) == (
        f"Workflow 'mixed': step 1 (t.echo) has tenantId {other_tenant}, but the workflow belongs to tenant {tenant}"
    )


def test_empty_and_unnamed_workflows(runner, tenant):
    assert refused(runner, Workflow("empty", tenant_id=tenant)) == "Workflow 'empty' has no steps"
    unnamed = Workflow("", tenant_id=tenant)
    unnamed.add("t.echo", {})
    assert refused(runner, unnamed) == (
        "A workflow name must be a non-empty string of at most 255 characters, got ''"
    )
    with pytest.raises(InvalidWorkflow) as info:
        runner.schedule_workflow({"steps": []})
    assert str(info.value) == "schedule_workflow expects a Workflow, got dict"


def test_a_bad_payload_in_a_later_step_writes_nothing(runner, tenant):
    wf = Workflow("payload", tenant_id=tenant)
    first = wf.add("t.echo", {"ok": True})
    wf.add("t.echo", {"bad": object()}, after=[first])
    message = refused(runner, wf, InvalidJobData)
    assert message.startswith("Job data is not JSON-serialisable: Object of type object")


def test_reserved_metadata_of_a_step(runner, tenant):
    wf = Workflow("meta", tenant_id=tenant)
    wf.add("t.echo", {}, metadata={"workflowId": "mine"})
    assert refused(runner, wf, InvalidJobData) == "metadata keys are reserved by the job record: workflowId"


def test_the_tenant_comes_from_the_steps_data_when_not_given(runner, tenant):
    wf = Workflow("from-data")
    wf.add("t.echo", {"tenantId": str(tenant)})
    result = runner.schedule_workflow(wf)
    assert WorkflowRow.objects.get(pk=uuid.UUID(result.workflow_id)).tenant == tenant
    assert runner.get_workflow_status(result.workflow_id, tenant).status == "processing"
