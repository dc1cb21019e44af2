"""msgraph-core's batch classes (`msgraph_core.requests`) import the `Deprecated` package
(`from deprecated import deprecated`) without declaring it as a dependency (msgraph-core
1.5.2), so `BatchRequestContent` fails to import where nothing else pulled it in. The product
should depend on `Deprecated` itself; for the tests, when it is missing, this puts a minimal
stand-in under that name: the decorator form msgraph-core uses (`@deprecated("reason")` on a
class), warning on use like the real one.
"""

from __future__ import annotations

import functools
import importlib.util
import sys
import types
import warnings
from collections.abc import Callable
from typing import Any


def install_deprecated_shim() -> bool:
    """Install the stand-in unless the real package is importable; True when installed."""
    if "deprecated" in sys.modules or importlib.util.find_spec("deprecated") is not None:
        return False
    module = types.ModuleType("deprecated")
    module.deprecated = _deprecated  # type: ignore[attr-defined]
    sys.modules["deprecated"] = module
    return True


def _deprecated(reason: Any = None, **_: Any) -> Any:
    if callable(reason) and not isinstance(reason, str):  # bare @deprecated
        return _wrap(reason, "")
    return lambda target: _wrap(target, reason or "")


def _wrap(target: Any, reason: str) -> Any:
    message = f"{getattr(target, '__name__', target)} is deprecated. {reason}".strip()
    if isinstance(target, type):
        original_init: Callable[..., None] = target.__init__  # type: ignore[misc]

        @functools.wraps(original_init)
        def init(self: Any, *args: Any, **kwargs: Any) -> None:
            warnings.warn(message, DeprecationWarning, stacklevel=2)
            original_init(self, *args, **kwargs)

        target.__init__ = init  # type: ignore[misc]
        return target

    @functools.wraps(target)
    def call(*args: Any, **kwargs: Any) -> Any:
        warnings.warn(message, DeprecationWarning, stacklevel=2)
        return target(*args, **kwargs)

    return call
