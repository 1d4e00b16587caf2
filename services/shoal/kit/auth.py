"""Authorization: what the calling principal may do in a project. Roles are ordered reader < writer < admin."""

from __future__ import annotations

from typing import Final

from shoal.kit import context
from shoal.kit.context import Principal
from shoal.kit.errors import PermissionDenied, Unauthenticated

_RANK: Final = {"READER": 1, "WRITER": 2, "ADMIN": 3}


def current() -> Principal:
    """The principal of the call being served (set by the auth interceptor)."""
    principal = context.principal.get()
    if principal is None:
        raise Unauthenticated("no authenticated principal for this call", reason="API_KEY_MISSING")
    return principal


def require(project: str, role: str = "READER", principal: Principal | None = None) -> Principal:
    """The principal, if it may act on `project` (`projects/{project}`) with at least `role`."""
    who = principal or current()
    if who.admin:
        return who
    if project not in who.projects or _RANK.get(who.role, 0) < _RANK[role]:
        raise PermissionDenied(
            f"the API key may not {'read' if role == 'READER' else 'change'} {project}",
            reason="PERMISSION_DENIED",
            metadata={"resource": project, "required_role": role},
        )
    return who


def require_admin(principal: Principal | None = None) -> Principal:
    """The principal, if it is the suite's admin key."""
    who = principal or current()
    if not who.admin:
        raise PermissionDenied("only the admin API key may do this", reason="ADMIN_REQUIRED")
    return who
