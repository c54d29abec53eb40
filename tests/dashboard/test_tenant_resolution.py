"""The site's TENANT_RESOLVER runs only for signed-in viewers who may see the dashboard (issue 10, item 7)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from tests.factories import JobFactory

from .conftest import login

#: Every call of `recording_resolver`: the user each request carried.
resolver_calls: list = []


def recording_resolver(request):
    """A custom resolver that records who it was asked about, and scopes to the user's tenant."""
    resolver_calls.append(request.user)
    return request.user.tenant_id


@pytest.fixture(autouse=True)
def _resolver(settings):
    settings.JOBSCHEDULER = {"TENANT_RESOLVER": f"{__name__}.recording_resolver"}
    resolver_calls.clear()
    yield
    resolver_calls.clear()


PAGES = [
    ("get", "jobscheduler:overview", []),
    ("get", "jobscheduler:job-list", []),
    ("get", "jobscheduler:schedules", []),
    ("get", "jobscheduler:workers", []),
    ("post", "jobscheduler:job-bulk", []),
]


@pytest.mark.parametrize(("method", "name", "args"), PAGES)
def test_anonymous_requests_never_reach_the_resolver(client, method, name, args):
    response = getattr(client, method)(reverse(name, args=args))
    assert response.status_code == 302 and "/login" in response["Location"]
    assert resolver_calls == []


def test_anonymous_job_page_and_cancel_never_reach_the_resolver(client, acme):
    job = JobFactory(tenant=acme.tenant)
    assert client.get(reverse("jobscheduler:job-detail", args=[job.job_id])).status_code == 302
    assert client.post(reverse("jobscheduler:job-cancel", args=[job.job_id])).status_code == 302
    assert resolver_calls == []


def test_a_viewer_without_the_permission_gets_403_without_a_resolver_call(acme, make_user):
    response = login(make_user(acme)).get(reverse("jobscheduler:overview"))
    assert response.status_code == 403
    assert resolver_calls == []


def test_a_signed_in_viewer_is_resolved_once_per_request_and_scoped_by_it(viewer, acme, globex):
    mine, theirs = JobFactory(tenant=acme.tenant), JobFactory(tenant=globex.tenant)
    client = login(viewer)
    assert client.get(reverse("jobscheduler:job-detail", args=[mine.job_id])).status_code == 200
    assert client.get(reverse("jobscheduler:job-detail", args=[theirs.job_id])).status_code == 404
    assert resolver_calls == [viewer, viewer]
