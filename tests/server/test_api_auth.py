"""Bearer tokens -> roles, including the legacy single token's two meanings."""

from __future__ import annotations

from durable_workflow_server.api import Authenticator
from durable_workflow_server.config import Settings


def _auth(**tokens: str) -> Authenticator:
    return Authenticator(Settings(auth="token", **tokens))  # type: ignore[arg-type]


def test_auth_none_makes_everyone_an_anonymous_admin_with_worker_access() -> None:
    principal = Authenticator(Settings()).authenticate(None)
    assert principal is not None
    assert principal.role == "admin"
    assert principal.roles == {"worker", "operator", "admin"}


def test_each_role_token_grants_exactly_its_role() -> None:
    auth = _auth(worker_token="w", operator_token="o", admin_token="a")
    for token, role in (("w", "worker"), ("o", "operator"), ("a", "admin")):
        principal = auth.authenticate(f"Bearer {token}")
        assert principal is not None
        assert principal.roles == {role}


def test_missing_malformed_or_wrong_credentials_are_anonymous() -> None:
    auth = _auth(worker_token="w")
    for header in (None, "", "Bearer", "Bearer ", "Basic w", "Bearer x", "Bearer ww", "w"):
        assert auth.authenticate(header) is None


def test_scheme_is_case_insensitive() -> None:
    assert _auth(worker_token="w").authenticate("bearer w") is not None


def test_legacy_token_has_full_access_while_no_role_token_exists() -> None:
    principal = _auth(auth_token="legacy").authenticate("Bearer legacy")
    assert principal is not None
    assert principal.roles == {"worker", "operator", "admin"}


def test_legacy_token_is_admin_only_once_a_role_token_exists() -> None:
    principal = _auth(auth_token="legacy", worker_token="w").authenticate("Bearer legacy")
    assert principal is not None
    assert principal.roles == {"admin"}
