"""The ``dw`` command line: one subcommand per task.

- ``dw server start``: serve the API (creates the database, schema and ``default`` namespace
  on first use). With no flags it listens on 127.0.0.1:8080, uses ./durable-workflow.db and
  runs with authentication OFF, which its first log line says.
- ``dw server migrate``: apply schema migrations to ``--db`` (a SQLite file or a
  ``postgresql://`` DSN) and exit; running it again does nothing, and it refuses (exit 1) a
  database whose schema is newer than this release knows.
- ``dw workflow history WORKFLOW_ID [--run-id ID] [--export FILE]``: fetch a run's history from
  a running server (``--url``, ``--namespace``, ``--token``) and write it as JSON that
  ``durable_workflow.workflow.Replayer`` replays offline.

Every flag falls back to a ``DW_*`` environment variable shown in ``--help``. This module is
the edge: it alone reads ``os.environ`` and turns it into a :class:`Settings`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import socket
import sys
from collections.abc import Mapping, Sequence

from durable_workflow_server.config import AUTH_MODES, LOG_LEVELS, OPTIONS, ConfigError, Option, Settings

logger = logging.getLogger("durable_workflow_server")

_CHOICES: dict[str, Sequence[str]] = {"auth": AUTH_MODES, "log_level": LOG_LEVELS}
_MIGRATE_FIELDS = ("db", "log_level")
#: Seconds uvicorn waits for in-flight requests (long polls included) after Ctrl-C/SIGTERM
#: before cancelling them; a held poll must not delay a restart by its full 30 s.
_GRACEFUL_SHUTDOWN_SECONDS = 5


def _add_option(parser: argparse.ArgumentParser, option: Option) -> None:
    shown_default = "unset" if option.default is None else option.default
    if option.switch:
        parser.add_argument(
            option.flag,
            dest=option.field,
            action="store_const",
            const="true",
            default=None,
            help=f"{option.help} [env {option.env}=true|false; default {shown_default}]",
        )
        return
    parser.add_argument(
        option.flag,
        dest=option.field,
        default=None,
        choices=_CHOICES.get(option.field),
        metavar=option.field.upper() if option.field not in _CHOICES else None,
        help=f"{option.help} [env {option.env}; default {shown_default}]",
    )


def build_parser() -> argparse.ArgumentParser:
    """Return the ``dw`` argument parser.

    Returns:
        The parser, with ``server start`` and ``server migrate``.
    """
    parser = argparse.ArgumentParser(prog="dw", description="Durable Workflow for Python.")
    groups = parser.add_subparsers(dest="group", metavar="GROUP", required=True)
    server = groups.add_parser("server", help="run and manage the server")
    commands = server.add_subparsers(dest="command", metavar="COMMAND", required=True)

    start = commands.add_parser(
        "start",
        help="serve the HTTP API",
        description="Serve the HTTP API. Each flag falls back to the DW_* variable shown.",
    )
    for option in OPTIONS:
        _add_option(start, option)

    _add_workflow_commands(groups)

    migrate = commands.add_parser(
        "migrate",
        help="apply database migrations and exit",
        description="Create or upgrade the schema of --db and exit.",
    )
    for option in OPTIONS:
        if option.field in _MIGRATE_FIELDS:
            _add_option(migrate, option)
    return parser


def _add_workflow_commands(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    workflow = groups.add_parser("workflow", help="inspect workflows on a running server")
    commands = workflow.add_subparsers(dest="command", metavar="COMMAND", required=True)
    history = commands.add_parser(
        "history",
        help="write a run's history for offline replay",
        description="Fetch a run's history and write it as JSON that "
        "durable_workflow.workflow.Replayer replays. Each flag falls back to the DW_* variable shown.",
    )
    history.add_argument("workflow_id", metavar="WORKFLOW_ID")
    history.add_argument(
        "--run-id", dest="run_id", default=None, help="a run of it [default: the current run]"
    )
    history.add_argument(
        "--export", dest="export", default=None, metavar="FILE", help="write here [default: standard output]"
    )
    for flag, field, env, default, text in _CLIENT_FLAGS:
        history.add_argument(
            flag, dest=field, default=None, help=f"{text} [env {env}; default {default or 'unset'}]"
        )


#: Flags of client subcommands: (flag, dest, env, default, help).
_CLIENT_FLAGS = (
    ("--url", "url", "DW_URL", "http://127.0.0.1:8080", "server root URL"),
    ("--namespace", "namespace", "DW_NAMESPACE", "default", "namespace"),
    ("--token", "token", "DW_TOKEN", None, "bearer token (operator or admin role)"),
)


def workflow_history(flags: Mapping[str, object | None], env: Mapping[str, str]) -> int:
    """``dw workflow history``: write the export, or print it; 1 when the server refuses."""
    from durable_workflow_server import _cli_history

    values = {
        field: flags.get(field) or env.get(var) or default for _, field, var, default, _ in _CLIENT_FLAGS
    }
    try:
        document = _cli_history.fetch_history(
            str(values["url"]),
            str(flags["workflow_id"]),
            run_id=str(flags["run_id"]) if flags.get("run_id") else None,
            namespace=str(values["namespace"]),
            token=str(values["token"]) if values["token"] else None,
        )
    except _cli_history.HistoryExportError as exc:
        print(f"dw: error: {exc}", file=sys.stderr)
        return 1
    target = flags.get("export")
    if target:
        _cli_history.write(str(target), document)
        print(f"wrote {len(document['events'])} events of run {document['run_id']} to {target}")
    else:
        print(json.dumps(document, indent=1, sort_keys=True))
    return 0


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )


def _bind(host: str, port: int) -> socket.socket:
    """Bind the listening socket ourselves, so "listening" is logged only once it is true."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def _auth_summary(settings: Settings) -> str:
    if settings.auth == "none":
        return "auth OFF: development only"
    roles = [
        role
        for role, token in (
            ("worker", settings.worker_token),
            ("operator", settings.operator_token),
            ("admin", settings.admin_token),
        )
        if token
    ]
    if settings.auth_token:
        roles.append("legacy token" if roles else "legacy token (full access)")
    return "auth token: " + ", ".join(roles)


def start_server(settings: Settings) -> int:
    """Serve until Ctrl-C or SIGTERM, then stop the engine and close storage.

    Args:
        settings: the server settings.

    Returns:
        The process exit status.
    """
    import uvicorn

    from durable_workflow_server._gc import tune_gc
    from durable_workflow_server._http_protocol import CoalescingHttpToolsProtocol
    from durable_workflow_server.app import create_app

    app = create_app(settings)
    tune_gc()  # after the imports and the app: what exists now lives as long as the process
    try:
        sock = _bind(settings.host, settings.port)
    except OSError as exc:
        logger.error("cannot listen on %s:%d: %s", settings.host, settings.port, exc.strerror or exc)
        return 1
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    # With auth off the line is a warning, so that even --log-level warning shows it.
    logger.log(
        logging.WARNING if settings.auth == "none" else logging.INFO,
        "durable-workflow server listening on http://%s:%d (db %s, %s)",
        host,
        settings.port,
        settings.describe_db(),
        _auth_summary(settings),
    )
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        # httptools, with each answer's head and body leaving in one write (see the module).
        http=CoalescingHttpToolsProtocol,
        # X-Forwarded-* only change the client address and scheme in the ASGI scope, which
        # nothing but the access log reads: without it, the middleware is pure per-request cost.
        proxy_headers=settings.access_log,
        lifespan="on",
        access_log=settings.access_log,
        log_config=None,  # keep our logging setup; uvicorn's loggers propagate to it
        log_level=settings.log_level,
        server_header=False,
        timeout_graceful_shutdown=_GRACEFUL_SHUTDOWN_SECONDS,
    )
    server = uvicorn.Server(config)
    # uvicorn handles SIGINT/SIGTERM itself (graceful shutdown, lifespan stop) and afterwards
    # re-raises the signal to whatever handler was installed before it. With Python's defaults
    # that would turn a clean stop into a KeyboardInterrupt traceback or a "killed" status.
    previous = {sig: signal.signal(sig, _after_graceful_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.run(sockets=[sock])
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0 if server.started else 3


def _after_graceful_stop(signum: int, frame: object) -> None:
    """Absorb the signal uvicorn re-raises once it has stopped gracefully."""


def migrate(settings: Settings) -> int:
    """Apply migrations to ``settings.db`` and report it.

    Args:
        settings: the server settings.

    Returns:
        The process exit status.
    """
    from durable_workflow_server.app import migrate_database
    from durable_workflow_server.storage import StorageError

    try:
        asyncio.run(migrate_database(settings))
    except StorageError as exc:  # unreachable database, or a schema newer than this release
        logger.error("cannot migrate %s: %s", settings.describe_db(), exc)
        return 1
    logger.info("database %s is up to date", settings.describe_db())
    return 0


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Run ``dw``.

    Args:
        argv: arguments without the program name (default: ``sys.argv[1:]``).
        environ: the environment (default: ``os.environ``).

    Returns:
        The process exit status (2 for bad flags or settings).
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    env = os.environ if environ is None else environ
    flags = vars(args)
    if args.group == "workflow":
        return workflow_history(flags, env)
    try:
        settings = Settings.from_sources(flags, env)
    except ConfigError as exc:
        parser.exit(2, f"dw: error: {exc}\n")
    _configure_logging(settings.log_level)
    try:
        if args.command == "migrate":
            return migrate(settings)
        return start_server(settings)
    except ConfigError as exc:
        logger.error("%s", exc)
        return 2


if __name__ == "__main__":
    sys.exit(main())
