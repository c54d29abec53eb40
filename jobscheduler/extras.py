"""Optional backends shipped as pip extras, and the clear error when one is chosen but not installed.

A plain `pip install django-jobscheduler` gives the pgboss backend and the dashboard; the Temporal backend
needs `django-jobscheduler[temporal]`. Nothing imports an extra's package until the site chooses that backend,
so a lean install never pays for (or breaks on) what it does not use.
"""

from __future__ import annotations

import importlib
from enum import StrEnum

from .exceptions import ExtraNotInstalled


class Extra(StrEnum):
    """The extras of the package (`pip install 'django-jobscheduler[NAME]'`), by name."""

    TEMPORAL = "temporal"


#: The top-level module each extra brings.
EXTRA_MODULES: dict[Extra, str] = {Extra.TEMPORAL: "temporalio"}


def is_installed(extra: Extra) -> bool:
    """Whether the extra's package can be imported (it is imported: only ask when the backend is wanted)."""
    module = EXTRA_MODULES[extra]
    try:
        importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.partition(".")[0] == module:
            return False
        raise  # the package is there but something it needs is not: that error is the one to show
    return True


def require(extra: Extra) -> None:
    """ExtraNotInstalled naming the pip extra, unless its package is installed."""
    if not is_installed(extra):
        raise ExtraNotInstalled(str(extra), EXTRA_MODULES[extra])
