"""Per-call context shared by interceptors, logging and servicers (contextvars follow asyncio tasks)."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Principal:
    """Who is calling. Admin principals act on every project."""

    key_id: str
    role: str
    projects: frozenset[str] = field(default_factory=frozenset)
    admin: bool = False
    # When the key stops working (ISO 8601), empty for never.
    expire_time: str = ""

    def may_access(self, project: str) -> bool:
        """True when the principal may act on `projects/{project}` (given as the full resource name)."""
        return self.admin or project in self.projects


request_id: ContextVar[str] = ContextVar("shoal_request_id", default="")
method: ContextVar[str] = ContextVar("shoal_method", default="")
principal: ContextVar[Principal | None] = ContextVar("shoal_principal", default=None)
