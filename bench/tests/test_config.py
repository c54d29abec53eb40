from __future__ import annotations

import os

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
        "enqueue,drain,latency,workflow,profile,scale,memory,temporal,dashboard,peers"
    )


def test_smoke_defaults_shrink_sizes_but_keep_every_peer(monkeypatch) -> None:
    for key in (*config.SMOKE_DEFAULTS, "BENCH_WORKLOADS"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("BENCH_SMOKE", "1")
    cfg = config.load()
    assert cfg.n == 2000 and cfg.scale_finished == 50000 and cfg.smoke
    assert (os.environ["BENCH_WF_WIDTH"], os.environ["BENCH_WF_CHAIN"]) == ("200", "50")
    assert cfg.peers == config.ALL_PEERS.split()
    assert "peers" in cfg.workloads


def test_no_peers_drops_the_peers_workload(monkeypatch) -> None:
    monkeypatch.setenv("BENCH_PEERS", "none")
    monkeypatch.delenv("BENCH_WORKLOADS", raising=False)
    cfg = config.load()
    assert cfg.peers == [] and "peers" not in cfg.workloads


@pytest.mark.parametrize(
    ("workloads", "phases"),
    [
        (set(config.ALL_WORKLOADS.split(",")), {"standard", "workflow"}),
        ({"workflow", "peers"}, {"workflow"}),
        ({"drain", "peers"}, {"standard"}),
        ({"latency", "workflow", "peers"}, {"standard", "workflow"}),
        # Naming none of the peers' workloads runs their standard sequence, as before workflows existed.
        ({"peers"}, {"standard"}),
        ({"scale", "peers"}, {"standard"}),
    ],
)
def test_peer_phases_follow_the_workloads_asked(workloads: set[str], phases: set[str]) -> None:
    assert config.peer_phases(workloads) == phases


def test_peer_drivers_read_the_same_workloads(monkeypatch) -> None:
    monkeypatch.setenv("BENCH_WORKLOADS", " workflow , peers,")
    assert config.workloads_from_env() == {"workflow", "peers"}
