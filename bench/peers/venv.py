"""The bench virtualenv the peers run in (`.bench-venv`, git-ignored), built from requirements.txt here.

Created with the interpreter running the bench (Python 3.11) when missing; refilled when requirements.txt
changed since the last install (its hash is kept in the virtualenv). The project's `.venv` is never touched:
the peers pin their own Django, psycopg and temporalio, and none of their packages reaches ours.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

from bench.config import PEER_VENV

REQUIREMENTS = Path(__file__).resolve().parent / "requirements.txt"
STAMP = PEER_VENV / ".bench-requirements"


def python() -> Path:
    return PEER_VENV / "bin" / "python"


def ensure() -> Path:
    """The bench virtualenv's interpreter, after creating or refilling the virtualenv if needed."""
    wanted = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    if python().exists() and STAMP.exists() and STAMP.read_text().strip() == wanted:
        return python()
    if not python().exists():
        print(f"[peers] creating the bench virtualenv {PEER_VENV.name}/", flush=True)
        base = getattr(sys, "_base_executable", sys.executable)
        subprocess.run([base, "-m", "venv", str(PEER_VENV)], check=True)
    print(f"[peers] installing {REQUIREMENTS.name} into {PEER_VENV.name}/ (once)", flush=True)
    pip = [str(python()), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "-r", str(REQUIREMENTS)], check=True)
    STAMP.write_text(wanted + "\n")
    return python()
