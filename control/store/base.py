"""The resource store seam."""

from __future__ import annotations

from typing import Any, Literal, Protocol

Outcome = Literal["created", "configured", "unchanged"]


class ResourceStore(Protocol):
    """Resources as Knative JSON objects (metadata, spec, status), keyed by kind, namespace and name."""

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None: ...

    def find(self, kind: str, namespace: str | None = None) -> list[dict[str, Any]]: ...

    def put_all(self, objs: list[dict[str, Any]]) -> list[tuple[dict[str, Any], Outcome]]:
        """Create or update every object in one transaction: all are stored or none."""
        ...

    def delete(self, kind: str, namespace: str, name: str) -> bool: ...

    def set_status(self, kind: str, namespace: str, name: str, status: dict[str, Any]) -> None: ...

    def close(self) -> None: ...
