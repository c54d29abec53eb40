"""Shared fixtures: a clean handler registry per test, and tenants."""

import uuid

import pytest

from jobscheduler.registry import JobHandlerRegistry
from jobscheduler.runners.factory import JobRunnerFactory


@pytest.fixture(autouse=True)
def _isolated_registry():
    """Each test sees the registered handlers as they were, plus whatever it registers itself."""
    saved = JobHandlerRegistry.snapshot()
    yield
    JobHandlerRegistry.restore(saved)
    JobRunnerFactory.reset()


@pytest.fixture
def tenant() -> uuid.UUID:
    return uuid.uuid4()


@pytest.fixture
def other_tenant() -> uuid.UUID:
    return uuid.uuid4()
