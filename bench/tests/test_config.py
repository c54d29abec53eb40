from __future__ import annotations

import pytest

from bench import config


def test_unknown_peer_is_refused_before_anything_starts(monkeypatch) -> None:
    monkeypatch.setenv("BENCH_PEERS", "pgqueuer oban")
    with pytest.raises(config.ConfigError) as exc:
        config.load()
    assert str(exc.value) == (
        "BENCH_PEERS: unknown peer(s) oban; known: pgqueuer procrastinate chancy django-q2 django-q2-save0 "
        "django-tasks celery temporal"
    )


def test_unknown_workload_is_refused(monkeypatch) -> None:
    monkeypatch.setenv("BENCH_PEERS", "none")
    monkeypatch.setenv("BENCH_WORKLOADS", "drain,speed")
    with pytest.raises(config.ConfigError) as exc:
        config.load()
    assert str(exc.value) == (
        "BENCH_WORKLOADS: unknown workload(s) speed; known: "
        "enqueue,drain,latency,profile,scale,memory,temporal,dashboard,peers"
    )


def test_smoke_defaults_shrink_sizes_but_keep_every_peer(monkeypatch) -> None:
    for key in (*config.SMOKE_DEFAULTS, "BENCH_WORKLOADS"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("BENCH_SMOKE", "1")
    cfg = config.load()
    assert cfg.n == 2000 and cfg.scale_finished == 50000 and cfg.smoke
    assert cfg.peers == config.ALL_PEERS.split()
    assert "peers" in cfg.workloads


def test_no_peers_drops_the_peers_workload(monkeypatch) -> None:
    monkeypatch.setenv("BENCH_PEERS", "none")
    monkeypatch.delenv("BENCH_WORKLOADS", raising=False)
    cfg = config.load()
    assert cfg.peers == [] and "peers" not in cfg.workloads
