"""Our own adapters for the job queues a Django team would pick instead of ours, measured like ours.

Each peer has a driver module (`<peer>_driver.py`: set-up, one-by-one and bulk enqueue, a drain trial, the
latency run) and the application module its worker process loads. The drivers run in the bench virtualenv
(`.bench-venv`, from requirements.txt here, built by bench/peers/venv.py), never in the project's `.venv`,
one subprocess per peer: `.bench-venv/bin/python -m bench.peers NAME` (see __main__.py). They share the
workload definitions of bench/measure.py and the phase sequence of bench/peers/harness.py with our side.

This module is the catalogue only, importable from either interpreter.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Peer:
    """One entry of `BENCH_PEERS`: which driver runs it, with what extra environment, needing which server."""

    driver: str
    env: dict[str, str] = field(default_factory=dict)
    #: "redis" or "temporal": the server the launcher starts around this peer (PostgreSQL is always up).
    needs: str | None = None


PEERS: dict[str, Peer] = {
    "pgqueuer": Peer("pgqueuer_driver"),
    "procrastinate": Peer("procrastinate_driver"),
    "chancy": Peer("chancy_driver"),
    "django-q2": Peer("djangoq_driver"),
    "django-q2-save0": Peer("djangoq_driver", {"BENCH_DJQ_SAVE_LIMIT": "0"}),
    "django-tasks": Peer("djangotasks_driver"),
    "celery": Peer("celery_driver", needs="redis"),
    "temporal": Peer("temporal_driver", needs="temporal"),
}
