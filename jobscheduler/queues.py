"""Named queues: the name every job carries, and how a name is checked.

Every job belongs to one queue: the one its schedule call names (`queue=`), else its handler's
(`@job_handler(..., queue=...)`), else `"default"`. The name is recorded with the job (`jobs.metadata.queue`,
and the pgboss queue row's `queue` column), so a worker can serve a subset of queues and the dashboard can
filter and count by queue.

Names are short identifiers because they travel everywhere: worker command lines (`--queues emails:5`, hence
no `:` or `,`), Temporal task queue names, URLs of the dashboard.
"""

from __future__ import annotations

import re
from typing import Any

from .exceptions import InvalidQueue

DEFAULT_QUEUE = "default"
MAX_QUEUE_NAME = 100

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def check_queue_name(name: Any) -> str:
    """The name itself, or InvalidQueue saying what a name may be."""
    if isinstance(name, str) and len(name) <= MAX_QUEUE_NAME and _NAME.fullmatch(name):
        return name
    raise InvalidQueue(
        f"Invalid queue name: {name!r} (1-{MAX_QUEUE_NAME} letters, digits, '_', '-' or '.', "
        "starting with a letter or digit)"
    )
