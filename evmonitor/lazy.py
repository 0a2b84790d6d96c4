"""Names of a package imported on first use (PEP 562), not with the package.

`evmonitor.storage` and `evmonitor.bridge` re-export their modules' names this way, so that a
process that needs one module does not pay for the others' imports: the bridge never loads the
Elasticsearch client, and `evmonitor bridge` starts its group join before SQLAlchemy and Celery
load (issue 15).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

__all__ = ["lazy_names"]


def lazy_names(package: str, modules: dict[str, str], namespace: dict[str, Any]) -> Callable[[str], Any]:
    """The package's module-level `__getattr__`: `modules` maps a name to the submodule that
    defines it; the first lookup imports it and keeps the value in the package's `namespace`."""

    def __getattr__(name: str) -> Any:
        module = modules.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        namespace[name] = value
        return value

    return __getattr__
