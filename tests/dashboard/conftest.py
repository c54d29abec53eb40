"""Fixtures for the dashboard tests: two tenants of the example site, users with chosen permissions, jobs."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.core.cache import cache
from django.test import Client
from django.utils import timezone

from jobscheduler.models import Job, JobStatus
from project.accounts.models import Tenant, User
from tests.factories import JobDetailFactory, JobFactory

ALL_PERMISSIONS = ("view_job", "cancel_job", "retry_job", "change_schedule")


@pytest.fixture(autouse=True)
def _fresh_cache():
    """The overview caches its aggregates for a few seconds; each test starts from the database."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def acme(db) -> Tenant:
    return Tenant.objects.create(name="Acme")


@pytest.fixture
def globex(db) -> Tenant:
    return Tenant.objects.create(name="Globex")


@pytest.fixture
def make_user(db) -> Callable[..., User]:
    def make(tenant: Tenant | None, *codenames: str, superuser: bool = False) -> User:
        user = User.objects.create_user(
            username=f"u-{uuid.uuid4().hex[:8]}", password="pw", tenant=tenant, is_superuser=superuser
        )
        if codenames:
            user.user_permissions.add(
                *Permission.objects.filter(content_type__app_label="jobscheduler", codename__in=codenames)
            )
        return user

    return make


@pytest.fixture
def operator(acme, make_user) -> User:
    """Acme staff with every dashboard permission."""
    return make_user(acme, *ALL_PERMISSIONS)


@pytest.fixture
def viewer(acme, make_user) -> User:
    """Acme staff who may look but not act."""
    return make_user(acme, "view_job")


def login(user: User, *, csrf: bool = False) -> Client:
    client = Client(enforce_csrf_checks=csrf)
    client.force_login(user)
    return client


@pytest.fixture
def operator_client(operator) -> Client:
    return login(operator)


def finished_job(tenant: Tenant, status: str = JobStatus.COMPLETED, **overrides) -> Job:
    """A job that ran: timing, attempts and the steps both backends record."""
    started = timezone.now() - timedelta(seconds=90)
    completed = started + timedelta(seconds=42)
    metadata = {
        "data": {"tenantId": str(tenant.tenant), "invoice": 7},
        "attempts": 2 if status == JobStatus.FAILED else 1,
        "maxAttempts": 2,
        "startedAt": started.isoformat(),
        "completedAt": completed.isoformat(),
        "progress": 100 if status == JobStatus.COMPLETED else 40,
    }
    if status == JobStatus.FAILED:
        metadata.update(error="remote service returned 503", errorType="RemoteServiceError")
    metadata.update(overrides.pop("metadata", {}))
    job = JobFactory(
        tenant=tenant.tenant,
        status=status,
        metadata=metadata,
        created_at=started - timedelta(seconds=1),
        updated_at=completed,
        **overrides,
    )
    JobDetailFactory(job=job, tenant=tenant.tenant, step_name="execution_started", processed_at=started)
    if status == JobStatus.FAILED:
        for attempt in (1, 2):
            JobDetailFactory(
                job=job,
                tenant=tenant.tenant,
                step_name="execution_failed",
                status=JobStatus.FAILED,
                retry_count=attempt - 1,
                processed_at=started + timedelta(seconds=attempt),
                result={
                    "attempt": attempt,
                    "error": f"remote service returned 503 (attempt {attempt})",
                    "errorType": "RemoteServiceError",
                    "traceback": f'Traceback (most recent call last):\n  File "demo.py", line {attempt}\n',
                },
            )
    else:
        JobDetailFactory(
            job=job,
            tenant=tenant.tenant,
            step_name="execution_completed",
            status=JobStatus.COMPLETED,
            processed_at=completed,
        )
    return job
