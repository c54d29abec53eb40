"""Benchmarks of django-jobscheduler against the peer job queues (`make bench`; see bench/run.py)."""
