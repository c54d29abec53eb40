"""factory-boy factories for the monitoring record."""

import uuid

import factory
from django.utils import timezone

from jobscheduler.models import Job, JobDetail, JobStatus


class JobFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Job

    tenant = factory.LazyFunction(uuid.uuid4)
    job_id = factory.LazyFunction(uuid.uuid4)
    type = "generate-invoice"
    status = JobStatus.QUEUED
    user_id = factory.LazyFunction(uuid.uuid4)
    runner_type = "pgboss"
    created_at = factory.LazyFunction(timezone.now)
    updated_at = factory.LazyFunction(timezone.now)
    metadata = factory.LazyFunction(lambda: {"data": {"tenantId": "t"}, "attempts": 0})
    external_id = factory.LazyAttribute(lambda o: str(o.job_id))


class JobDetailFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = JobDetail

    job = factory.SubFactory(JobFactory)
    tenant = factory.LazyAttribute(lambda o: o.job.tenant)
    detail_id = factory.LazyFunction(uuid.uuid4)
    step_name = "execution_started"
    status = JobStatus.PROCESSING
    processed_at = factory.LazyFunction(timezone.now)
    retry_count = 0
