"""The latest body of each watched object, kept from the watch streams (thread-safe)."""

from __future__ import annotations

import threading
from typing import Any


class ObjectCache:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._objects: dict[tuple[str, str, str], dict[str, Any]] = {}

    def put(self, kind: str, body: dict[str, Any]) -> None:
        meta = body["metadata"]
        with self._lock:
            self._objects[(kind, meta["namespace"], meta["name"])] = body

    def drop(self, kind: str, namespace: str, name: str) -> None:
        with self._lock:
            self._objects.pop((kind, namespace, name), None)

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        with self._lock:
            return self._objects.get((kind, namespace, name))

    def all(self, kind: str, namespace: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [body for (k, ns, _), body in self._objects.items()
                    if k == kind and (namespace is None or ns == namespace)]
