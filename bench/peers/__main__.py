"""`python -m bench.peers NAME`: run one peer's phases (in the bench virtualenv) and write its JSON result."""

from __future__ import annotations

import importlib
import sys

from bench.peers import PEERS

if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in PEERS:
        sys.exit(f"usage: python -m bench.peers NAME, NAME one of: {' '.join(PEERS)}")
    importlib.import_module(f"bench.peers.{PEERS[sys.argv[1]].driver}").main()
