"""What the A/B benches share: source trees of ours, each measured with its own code and its own schema.

A tree is a checkout of this repository (`git worktree add ../before <commit>`), given as LABEL=DIR. Each gets a
database of its own on the one throw-away cluster, migrated by the tree's own `manage.py migrate`, so a tree
that changes indexes is measured with its own indexes. Its code runs in processes started in the tree with
this interpreter (the trees share one virtualenv: the A/B is about our code, not the dependencies).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from bench import config, pg


def trees(specs: list[str]) -> dict[str, Path]:
    """LABEL=DIR options to {label: resolved dir}; none given: this checkout, as "ours"."""
    pairs = dict(spec.split("=", 1) for spec in specs) or {"ours": str(config.REPO)}
    resolved = {label: Path(d).resolve() for label, d in pairs.items()}
    for label, tree in resolved.items():
        if not (tree / "manage.py").exists():
            raise SystemExit(f"bench: {label}={tree} is not a checkout of this project (no manage.py)")
    return resolved


def base_env() -> dict[str, str]:
    """The environment without what would tie a child to this checkout or database."""
    return {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "VIRTUAL_ENV", "PYTHONPATH")}


def database(label: str) -> str:
    return f"bench_ab_{label}"


def prepare_tree(label: str, tree: Path, port: int, env: dict[str, str]) -> dict[str, str]:
    """A fresh database for the tree, migrated by its own migrations; the environment its processes run in."""
    db = database(label)
    pg.recreate_db(port, db)
    tree_env = dict(env, DATABASE_URL=pg.dsn(port, db), DJANGO_SETTINGS_MODULE="project.settings")
    tree_env["PYTHONPATH"] = str(tree)
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"], cwd=tree, env=tree_env, check=True
    )
    return tree_env


def require(tree: Path, module: str) -> None:
    """The A/B runs its child in every tree: an older checkout needs this bench file copied in."""
    if not (tree / "bench" / f"{module}.py").exists():
        raise SystemExit(f"bench: {tree} has no bench/{module}.py: copy this file (and bench/ab.py) there")
