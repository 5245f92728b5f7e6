"""The server's settings: one typed object, built once at the edge from flags and ``DW_*`` env.

Precedence for every option is: command-line flag, then its ``DW_*`` environment variable, then
the default. ``OPTIONS`` is the single table of names, variables, defaults and help texts; the CLI
turns it into flags, so a new option appears in ``--help`` with its variable by construction.
Nothing below ``cli.py`` reads the environment: the rest of the server receives a ``Settings``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

AuthMode = Literal["none", "token"]

AUTH_MODES: tuple[AuthMode, ...] = ("none", "token")
LOG_LEVELS = ("critical", "error", "warning", "info", "debug")
DEFAULT_MAX_PAYLOAD_BYTES = 2 * 1024 * 1024
#: Below this a worker could not even send a failure report; above it one request could hold
#: a large share of the server's memory.
_MIN_PAYLOAD_BYTES = 1024
_MAX_PAYLOAD_BYTES = 256 * 1024 * 1024


class ConfigError(ValueError):
    """A setting has a value the server cannot run with; the message names flag and variable."""


@dataclass(frozen=True, slots=True)
class Option:
    """One setting: its ``Settings`` field, flag, environment variable, default and help."""

    field: str
    flag: str
    env: str
    default: str | None
    help: str
    secret: bool = False
    switch: bool = False  # a flag without a value: present means "true"


OPTIONS: tuple[Option, ...] = (
    Option("host", "--host", "DW_HOST", "127.0.0.1", "address to listen on"),
    Option("port", "--port", "DW_PORT", "8080", "TCP port to listen on"),
    Option(
        "db",
        "--db",
        "DW_DB",
        "durable-workflow.db",
        "SQLite file path, or a postgresql:// DSN",
    ),
    Option("auth", "--auth", "DW_AUTH", "none", "authentication: none (development only) or token"),
    Option("admin_token", "--admin-token", "DW_ADMIN_TOKEN", None, "bearer token of the admin role", True),
    Option(
        "operator_token",
        "--operator-token",
        "DW_OPERATOR_TOKEN",
        None,
        "bearer token of the operator role",
        True,
    ),
    Option(
        "worker_token", "--worker-token", "DW_WORKER_TOKEN", None, "bearer token of the worker role", True
    ),
    Option(
        "auth_token",
        "--auth-token",
        "DW_AUTH_TOKEN",
        None,
        "legacy single token: full access while no role token is set, else admin only",
        True,
    ),
    Option(
        "max_payload_bytes",
        "--max-payload-bytes",
        "DW_MAX_PAYLOAD_BYTES",
        str(DEFAULT_MAX_PAYLOAD_BYTES),
        "largest request body accepted, in bytes",
    ),
    Option("log_level", "--log-level", "DW_LOG_LEVEL", "info", "one of " + ", ".join(LOG_LEVELS)),
    Option(
        "access_log",
        "--access-log",
        "DW_ACCESS_LOG",
        "false",
        "log one line per request (costs throughput)",
        switch=True,
    ),
)

OPTIONS_BY_FIELD: dict[str, Option] = {option.field: option for option in OPTIONS}


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the server needs to know about its deployment.

    Construct it with :meth:`from_sources` (flags + env) or directly in tests; both validate.
    """

    host: str = "127.0.0.1"
    port: int = 8080
    db: str = "durable-workflow.db"
    auth: AuthMode = "none"
    admin_token: str | None = None
    operator_token: str | None = None
    worker_token: str | None = None
    auth_token: str | None = None
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES
    log_level: str = "info"
    access_log: bool = False

    def __post_init__(self) -> None:
        _check_settings(self)

    @property
    def is_postgres(self) -> bool:
        """Return True when ``db`` names a PostgreSQL server rather than a SQLite file."""
        return self.db.startswith(("postgresql://", "postgres://"))

    @property
    def has_role_tokens(self) -> bool:
        """Return True when at least one per-role token is configured."""
        return any((self.admin_token, self.operator_token, self.worker_token))

    def describe_db(self) -> str:
        """Return ``db`` fit for a log line: a DSN loses its password."""
        if not self.is_postgres:
            return self.db
        scheme, _, rest = self.db.partition("://")
        userinfo, at, hostpart = rest.rpartition("@")
        if not at or ":" not in userinfo:
            return self.db
        return f"{scheme}://{userinfo.split(':', 1)[0]}:***@{hostpart}"

    @classmethod
    def from_sources(cls, flags: Mapping[str, object | None], env: Mapping[str, str]) -> Settings:
        """Build settings from parsed flags, falling back to the environment, then defaults.

        Args:
            flags: ``Settings`` field name -> flag value, ``None`` where the flag was not given.
            env: the process environment (only ``DW_*`` keys are read).

        Returns:
            The validated settings.

        Raises:
            ConfigError: a value is malformed or the combination cannot work.
        """
        raw: dict[str, str | None] = {}
        for option in OPTIONS:
            given = flags.get(option.field)
            if given is not None:
                raw[option.field] = str(given)
            elif env.get(option.env, "") != "":
                raw[option.field] = env[option.env]
            else:
                raw[option.field] = option.default
        auth = (raw["auth"] or "").strip().lower()
        if auth not in AUTH_MODES:
            raise ConfigError(_bad("auth", raw["auth"], "expected one of: " + ", ".join(AUTH_MODES)))
        return cls(
            host=(raw["host"] or "").strip(),
            port=_int_option("port", raw["port"]),
            db=(raw["db"] or "").strip(),
            auth=auth,
            admin_token=_token(raw["admin_token"]),
            operator_token=_token(raw["operator_token"]),
            worker_token=_token(raw["worker_token"]),
            auth_token=_token(raw["auth_token"]),
            max_payload_bytes=_int_option("max_payload_bytes", raw["max_payload_bytes"]),
            log_level=(raw["log_level"] or "").strip().lower(),
            access_log=_bool_option("access_log", raw["access_log"]),
        )


def _check_settings(settings: Settings) -> None:
    if not settings.host:
        raise ConfigError(_bad("host", settings.host, "an address is required"))
    if not 1 <= settings.port <= 65535:
        raise ConfigError(_bad("port", settings.port, "expected 1..65535"))
    if not settings.db:
        raise ConfigError(_bad("db", settings.db, "a SQLite path or a postgresql:// DSN is required"))
    if settings.auth not in AUTH_MODES:
        raise ConfigError(_bad("auth", settings.auth, "expected one of: " + ", ".join(AUTH_MODES)))
    if settings.auth == "token" and not (settings.has_role_tokens or settings.auth_token):
        raise ConfigError(
            "--auth token needs at least one token: set --worker-token/DW_WORKER_TOKEN, "
            "--operator-token/DW_OPERATOR_TOKEN, --admin-token/DW_ADMIN_TOKEN or the legacy "
            "--auth-token/DW_AUTH_TOKEN (or use --auth none for local development)"
        )
    if not _MIN_PAYLOAD_BYTES <= settings.max_payload_bytes <= _MAX_PAYLOAD_BYTES:
        raise ConfigError(
            _bad(
                "max_payload_bytes",
                settings.max_payload_bytes,
                f"expected {_MIN_PAYLOAD_BYTES}..{_MAX_PAYLOAD_BYTES}",
            )
        )
    if settings.log_level not in LOG_LEVELS:
        raise ConfigError(_bad("log_level", settings.log_level, "expected one of: " + ", ".join(LOG_LEVELS)))


def _bad(field: str, value: object, why: str) -> str:
    option = OPTIONS_BY_FIELD[field]
    return f"invalid {option.flag}/{option.env} value {value!r}: {why}"


def _int_option(field: str, value: str | None) -> int:
    try:
        return int((value or "").strip())
    except ValueError:
        raise ConfigError(_bad(field, value, "expected an integer")) from None


def _bool_option(field: str, value: str | None) -> bool:
    text = (value or "").strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("", "0", "false", "no", "off"):
        return False
    raise ConfigError(_bad(field, value, "expected true or false"))


def _token(value: str | None) -> str | None:
    # An empty or blank variable means "not set": a deployment template that leaves
    # DW_WORKER_TOKEN= empty must not make the empty string a valid credential.
    if value is None or not value.strip():
        return None
    return value.strip()
