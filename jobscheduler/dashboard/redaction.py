"""Hiding secret-looking values before a payload or metadata reaches the page.

Job payloads routinely carry API tokens and passwords; the detail page shows them pretty-printed, so every
key that looks secret (a case-insensitive substring match against `JOBSCHEDULER["REDACT_KEYS"]`) is replaced,
at any depth of nesting, before the value is serialised.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from ..conf import setting
from ..record_keys import RESERVED_METADATA_KEYS, SYSTEM_METADATA_KEYS

REDACTED = "••••••"

#: Top-level metadata keys the library itself writes; shown as they are even when a name looks secret
#: (`singletonKey`, `scheduleKey` hold identifiers, not credentials). The payload gets no such exemption.
BOOKKEEPING_KEYS = RESERVED_METADATA_KEYS | SYSTEM_METADATA_KEYS


def redact(value: Any, *, keep: Iterable[str] = ()) -> Any:
    """A copy of `value` with the values of secret-looking keys replaced by a mask, at any depth.

    Top-level keys named in `keep` are not masked for their name; their values are still searched.
    """
    needles = tuple(k.lower() for k in setting("REDACT_KEYS"))
    if isinstance(value, dict):
        kept = set(keep)
        return {
            key: _redact(item, needles) if key in kept or not _is_secret(key, needles) else REDACTED
            for key, item in value.items()
        }
    return _redact(value, needles)


def _redact(value: Any, needles: tuple[str, ...]) -> Any:
    if isinstance(value, dict):
        return {
            key: REDACTED if _is_secret(key, needles) else _redact(item, needles)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [_redact(item, needles) for item in value]
    return value


def _is_secret(key: Any, needles: tuple[str, ...]) -> bool:
    lowered = str(key).lower()
    return any(needle in lowered for needle in needles)


def pretty_json(value: Any, *, keep: Iterable[str] = ()) -> str:
    """Redacted, indented JSON text for display (the template escapes it)."""
    return json.dumps(redact(value, keep=keep), indent=2, sort_keys=True, ensure_ascii=False, default=str)
