"""Who is calling: bearer tokens mapped onto the roles worker, operator and admin.

Modes (``Settings.auth``):

- ``none``: every caller is an anonymous admin that may also use the worker plane.
- ``token``: each configured role token grants its role. The legacy single token
  (``DW_AUTH_TOKEN``) grants every role while no role token exists; once one does, it is
  admin only (and admin has no worker access).

Tokens are compared with :func:`hmac.compare_digest` against every configured token, so the
time taken does not reveal which token, or how much of one, matched.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from durable_workflow_server.config import Settings

WORKER = "worker"
OPERATOR = "operator"
ADMIN = "admin"

WORKER_ROLES = frozenset({WORKER})
CONTROL_ROLES = frozenset({OPERATOR, ADMIN})
ANY_ROLE = frozenset({WORKER, OPERATOR, ADMIN})


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller: the role it is named by and every role it holds."""

    role: str
    roles: frozenset[str]
    subject: str


ANONYMOUS = Principal(role=ADMIN, roles=ANY_ROLE, subject="anonymous")


class Authenticator:
    """Resolve an ``Authorization`` header into a :class:`Principal` (or ``None``)."""

    __slots__ = ("_grants", "enabled")

    def __init__(self, settings: Settings) -> None:
        """Prepare the token table once.

        Args:
            settings: the server settings (``auth`` and the token fields).
        """
        self.enabled = settings.auth == "token"
        grants: list[tuple[bytes, Principal]] = []
        for token, role in (
            (settings.worker_token, WORKER),
            (settings.operator_token, OPERATOR),
            (settings.admin_token, ADMIN),
        ):
            if token:
                grants.append((token.encode(), Principal(role, frozenset({role}), role)))
        if settings.auth_token:
            legacy = (
                Principal(ADMIN, frozenset({ADMIN}), "legacy-token")
                if settings.has_role_tokens
                else Principal(ADMIN, ANY_ROLE, "legacy-token")
            )
            grants.append((settings.auth_token.encode(), legacy))
        self._grants = tuple(grants)

    def authenticate(self, authorization: str | None) -> Principal | None:
        """Return the caller's principal, or ``None`` when the credentials are missing or wrong.

        Args:
            authorization: the raw ``Authorization`` header value, if any.

        Returns:
            The principal; with several tokens equal, the caller holds all their roles.
        """
        if not self.enabled:
            return ANONYMOUS
        if not authorization:
            return None
        scheme, _, credential = authorization.strip().partition(" ")
        if scheme.lower() != "bearer":
            return None
        presented = credential.strip().encode()
        if not presented:
            return None
        matched: list[Principal] = []
        # No early exit: every token is compared, whatever matched first.
        for token, principal in self._grants:
            if hmac.compare_digest(presented, token):
                matched.append(principal)
        if not matched:
            return None
        if len(matched) == 1:
            return matched[0]
        roles = frozenset().union(*(p.roles for p in matched))
        return Principal(matched[0].role, roles, matched[0].subject)
