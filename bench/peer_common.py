"""The peer harness's workload definitions (`/work/shared/peers/common.py`), imported read-only.

Timing (spawn → all done, the 10→90% steady rate), the latency schedule (200 probes 20 ms apart) and the
percentile formula come from that one file, so our figures and the peers' are computed the same way.
"""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType

from bench.config import PEERS_DIR


def load() -> ModuleType:
    """Import common.py under a private name (the peers' folder also has modules called `report` etc.)."""
    if "bench_peer_common" in sys.modules:
        return sys.modules["bench_peer_common"]
    spec = importlib.util.spec_from_file_location("bench_peer_common", PEERS_DIR / "common.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_peer_common"] = module
    spec.loader.exec_module(module)
    return module
