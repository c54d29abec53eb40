"""GenericJobWorkflow's signals and query, and the replay test that keeps its code deterministic."""

from __future__ import annotations

import json
import re
import threading
import uuid
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from jobscheduler import current_job
from jobscheduler.models import JobDetail
from jobscheduler.registry import JobHandlerRegistry
from jobscheduler.temporal.inputs import QUERY_STATE, SIGNAL_CANCEL, SIGNAL_PROGRESS, WORKFLOW_NAME, JobInput
from jobscheduler.temporal.workflow import GenericJobWorkflow

from .conftest import job_row, steps, wait_for_status, wait_until

pytestmark = [pytest.mark.temporal, pytest.mark.django_db(transaction=True)]

HISTORIES = Path(__file__).parent / "histories"


async def _client(runner):
    return await runner._client_ready()


def _call(runner, fn):
    async def run():
        return await fn(await runner._client_ready())

    return runner._rpc(run())


def test_signals_and_query(runner, job_name, tenant):
    reported = threading.Event()

    def handler(job_id, data):
        job = current_job()
        job.progress(30, "started")
        reported.set()
        while not job.is_cancelled:
            threading.Event().wait(0.05)
        job.raise_if_cancelled()

    JobHandlerRegistry.register(job_name, handler)
    result = runner.schedule_job(job_name, {"tenantId": str(tenant)})
    wf = result.external_id
    assert reported.wait(10)

    def query():
        return _call(runner, lambda c: c.get_workflow_handle(wf).query(QUERY_STATE))

    state = wait_until(lambda: (s := query())["progress"] == 30 and s)
    assert state["step"] == "executing" and state["startedAt"] and state["completedAt"] is None
    assert state["message"] == "started" and state["attempt"] == 1 and state["recordBehind"] is False
    assert wait_for_status(result.job_id, "processing").meta["progress"] == 30

    _call(
        runner, lambda c: c.get_workflow_handle(wf).signal(SIGNAL_PROGRESS, {"progress": 55, "message": "op"})
    )
    assert wait_until(lambda: (s := query())["progress"] == 55 and s)["message"] == "op"
    # The signal is the job's progress: in the record, not only in the workflow's state.
    meta = wait_until(lambda: (m := job_row(result.job_id).meta)["progress"] == 55 and m)
    assert meta["progressMessage"] == "op"
    assert runner.get_job_status(result.job_id, tenant).progress == 55

    _call(
        runner,
        lambda c: c.get_workflow_handle(wf).signal(SIGNAL_CANCEL, {"reason": "ops", "cancelledBy": "me"}),
    )
    job = wait_for_status(result.job_id, "cancelled", timeout=10)
    assert job.meta["cancelReason"] == "ops" and job.meta["cancelledBy"] == "me"
    final = _call(runner, lambda c: c.get_workflow_handle(wf).result())
    assert final["status"] == "cancelled" and final["reason"] == "ops"
    state = query()
    assert state["step"] == "cancelled" and state["completedAt"]
    assert steps(result.job_id)[-1] == ("execution_cancelled", "cancelled")
    cancelled = JobDetail.objects.get(job_id=result.job_id, step_name="execution_cancelled").result
    assert cancelled == {"attempt": 1, "reason": "ops", "cancelledBy": "me"}


def _scheduled_style_run(runner, job_name, tenant):
    """A workflow started the way a Temporal Schedule starts one: no job id, the workflow creates the row."""
    job_input = JobInput(job_name=job_name, tenant=str(tenant), data={"tenantId": str(tenant)}, metadata={})
    wf_id = f"replay-{uuid.uuid4()}"
    _call(
        runner,
        lambda c: c.start_workflow(WORKFLOW_NAME, job_input, id=wf_id, task_queue=runner.task_queue),
    )
    result = _call(runner, lambda c: c.get_workflow_handle(wf_id).result())
    return wf_id, result


def test_replay_of_recorded_and_fresh_histories(runner, job_name, tenant):
    JobHandlerRegistry.register(job_name, lambda job_id, data: {"done": True})
    wf_id, result = _scheduled_style_run(runner, job_name, tenant)
    assert result["status"] == "completed" and result["result"] == {"done": True}
    wait_for_status(result["jobId"], "completed")
    fresh = _call(runner, lambda c: c.get_workflow_handle(wf_id).fetch_history())

    recorded = [
        WorkflowHistory.from_json(path.stem, json.loads(path.read_text()))
        for path in sorted(HISTORIES.glob("*.json"))
    ]
    assert recorded, f"no recorded histories in {HISTORIES}"

    async def replay():
        replayer = Replayer(workflows=[GenericJobWorkflow])
        for history in [fresh, *recorded]:
            await replayer.replay_workflow(history)

    runner._rpc(replay())


def test_a_job_started_now_runs_the_current_version_without_a_patch_marker(runner, job_name, tenant):
    """The input names the version, so a new run records no patch marker and no search-attribute upsert (two
    history events and a visibility write per job); it replays like the recorded histories."""
    JobHandlerRegistry.register(job_name, lambda job_id, data: {"done": True})
    result = runner.schedule_job(job_name, {"tenantId": str(tenant)})
    wait_for_status(result.job_id, "completed")
    history = _call(runner, lambda c: c.get_workflow_handle(result.external_id).fetch_history())

    types = [event.WhichOneof("attributes") for event in history.events]
    assert "marker_recorded_event_attributes" not in types
    assert "upsert_workflow_search_attributes_event_attributes" not in types
    scheduled = [
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in history.events
        if e.HasField("activity_task_scheduled_event_attributes")
    ]
    assert scheduled == ["jobscheduler.run_attempt"]  # the current version: one attempt, tried once
    assert steps(result.job_id) == [("execution_started", "processing"), ("execution_completed", "completed")]

    async def replay():
        await Replayer(workflows=[GenericJobWorkflow]).replay_workflow(history)

    runner._rpc(replay())


def _strings(value, key: str = ""):
    """Every string in a JSON document, with the key it sits under."""
    if isinstance(value, dict):
        for name, item in value.items():
            yield from _strings(item, name)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item, key)
    elif isinstance(value, str):
        yield key, value


def test_recorded_histories_carry_nothing_of_the_machine_they_were_made_on():
    """Fixtures are shared: no absolute path (in a stack trace or anywhere), no `pid@hostname` worker identity."""
    absolute = re.compile(r"""(?:^|[\s"'(])(?:/[\w.-]+){2,}|[A-Za-z]:\\""")
    paths = sorted(HISTORIES.glob("*.json"))
    assert paths
    for path in paths:
        for key, text in _strings(json.loads(path.read_text())):
            assert not absolute.search(text), f"{path.name}: absolute path in {key}: {text[:200]!r}"
            if key == "identity":
                assert "@" not in text, f"{path.name}: worker identity names its host: {text!r}"
