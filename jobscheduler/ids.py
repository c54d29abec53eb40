"""Job and step ids: UUIDv7, time-ordered.

Ids are primary-key material in `jobs` and `job_details`, whose indexes grow with the history. A random UUID
lands on a random leaf page of a large index, so with a big history every insert touches a page that is not
cached; a time-ordered id lands where the last one did. The SQL twin, `jobscheduler_uuid7()`, is created by
migration 0005 for ids made inside statements.
"""

from __future__ import annotations

import os
import time
import uuid
from typing import Any

_VERSION_7 = 0x7 << 76
_VARIANT_RFC = 0b10 << 62


def new_id() -> uuid.UUID:
    """48 bits of Unix milliseconds, the version and variant bits, 74 random bits (RFC 9562, UUIDv7)."""
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    rand_a = rand >> 68 & 0xFFF
    rand_b = rand & ((1 << 62) - 1)
    return uuid.UUID(int=(ms & 0xFFFF_FFFF_FFFF) << 80 | _VERSION_7 | rand_a << 64 | _VARIANT_RFC | rand_b)


def parse_uuid(value: Any) -> uuid.UUID | None:
    """A UUID, or None for anything that is not one (an unknown id is 'not found', not an error)."""
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except (TypeError, ValueError, AttributeError):
        return None
