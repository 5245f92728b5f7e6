"""What the server advertises: ``server_capabilities`` and the static part of cluster info.

Only what really works is advertised. The published 2.12.0 SDK reads these documents before it
registers a worker (``docs`` of the protocol: worker-plane §2, control-plane §5, and the 2.12.0
gates), so the contracts it parses are complete, and a feature flag is present and true only
once the engine implements it. Everything here is built once at startup.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import metadata
from typing import Any

from durable_workflow.protocol import (
    CONTROL_PLANE_HEADER,
    CONTROL_PLANE_VERSION,
    PAYLOAD_CODEC,
    WORKER_PROTOCOL_VERSION,
    Command,
)

LONG_POLL_TIMEOUT_SECONDS = 30
HISTORY_PAGE_SIZE_DEFAULT = 500
HISTORY_PAGE_SIZE_MAX = 1000
RESPONSE_ENCODINGS = ("gzip", "deflate")

#: The workflow-task commands the engine applies today; used when the engine does not
#: publish its own list.
DEFAULT_WORKFLOW_TASK_COMMANDS: tuple[str, ...] = (
    Command.SCHEDULE_ACTIVITY,
    Command.START_TIMER,
    Command.COMPLETE_WORKFLOW,
    Command.FAIL_WORKFLOW,
    Command.RECORD_SIDE_EFFECT,
    Command.RECORD_VERSION_MARKER,
    Command.UPSERT_SEARCH_ATTRIBUTES,
    Command.START_CHILD_WORKFLOW,
    Command.CONTINUE_AS_NEW,
    Command.OPEN_CONDITION_WAIT,
    Command.COMPLETE_UPDATE,
    Command.FAIL_UPDATE,
)

RESPONSE_SCHEMA = "durable-workflow.v2.control-plane-response"
RESPONSE_CONTRACT_SCHEMA = "durable-workflow.v2.control-plane-response.contract"
REQUEST_CONTRACT_SCHEMA = "durable-workflow.v2.control-plane-request.contract"
AUTH_CONTRACT_SCHEMA = "durable-workflow.v2.auth-composition.contract"

#: Body fields copied into the ``control_plane`` block when present (control-plane §3).
PROJECTED_FIELDS: tuple[str, ...] = (
    "run_id", "workflow_type", "namespace", "business_key", "status", "status_bucket",
    "is_terminal", "task_queue", "run_number", "run_count", "workflow_count", "is_current_run",
    "compatibility", "started_at", "closed_at", "last_progress_at", "wait_kind", "wait_reason",
    "next_page_token",
    "command_id", "command_status", "command_source", "target_scope", "outcome", "reason",
    "rejection_reason", "validation_errors",
    "result", "result_envelope", "update_id", "update_status", "wait_for", "wait_timed_out",
    "wait_timeout_seconds",
    "blocked_reason", "message", "diagnostic_status",
    "operation_name", "operation_name_field",
)  # fmt: skip

#: operation -> (required_fields, success_fields), for the operations we serve (§3).
OPERATION_CONTRACTS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "start": ((), ("workflow_id", "outcome")),
    "list": ((), ()),
    "describe": (("workflow_id",), ()),
    "list_runs": (("workflow_id",), ()),
    "describe_run": (("workflow_id",), ("run_id",)),
    "history": (("workflow_id", "run_id"), ("next_page_token",)),
    "cancel": (("workflow_id",), ("outcome",)),
    "terminate": (("workflow_id",), ("outcome",)),
    "result": (("workflow_id", "run_id"), ("status",)),
    "signal": (("workflow_id", "operation_name", "operation_name_field"), ("outcome",)),
    "query": (("workflow_id", "operation_name", "operation_name_field"), ("result",)),
    "update": (("workflow_id", "operation_name", "operation_name_field"), ("outcome",)),
}


def server_version() -> str:
    """Return this package's version (build identity only; clients must not gate on it)."""
    try:
        return metadata.version("durable-workflow-python")
    except metadata.PackageNotFoundError:
        return "0.0.0"


def server_capabilities(commands: Sequence[str] = DEFAULT_WORKFLOW_TASK_COMMANDS) -> dict[str, Any]:
    """Build the worker-plane ``server_capabilities`` object.

    Args:
        commands: the workflow-task command types the engine accepts.

    Returns:
        The object sent in cluster info and in every worker-plane response.
    """
    return {
        "long_poll_timeout": LONG_POLL_TIMEOUT_SECONDS,
        "supported_workflow_task_commands": [str(c) for c in commands],
        "workflow_task_poll_request_idempotency": True,
        "history_page_size_default": HISTORY_PAGE_SIZE_DEFAULT,
        "history_page_size_max": HISTORY_PAGE_SIZE_MAX,
        # 2.12.0 requires this before every query; the worker then polls query tasks.
        "query_tasks": True,
        "activity_retry_policy": True,
        "activity_timeouts": True,
        "non_retryable_failures": True,
        "child_workflow_retry_policy": True,
        "child_workflow_timeouts": True,
        "parent_close_policy": True,
        "response_compression": list(RESPONSE_ENCODINGS),
    }


def auth_composition_contract() -> dict[str, Any]:
    """Return the auth-composition manifest that 2.12.0 parses before a worker starts."""
    return {
        "schema": AUTH_CONTRACT_SCHEMA,
        "version": 1,
        "precedence": {
            "connection_values": ["explicit_argument", "environment", "profile", "default"],
            "profile_selection": ["explicit_argument", "DW_ENV", "default"],
        },
        "canonical_environment": {
            "server_url": "DURABLE_WORKFLOW_SERVER_URL",
            "namespace": "DURABLE_WORKFLOW_NAMESPACE",
            "auth_token": "DURABLE_WORKFLOW_AUTH_TOKEN",
            "tls_verify": "DURABLE_WORKFLOW_TLS_VERIFY",
            "profile": "DW_ENV",
        },
        "auth_material": {
            "token": {"status": "supported", "effective_config_value": "redacted"},
            "mtls": {"status": "reserved"},
            "signed_headers": {"status": "reserved"},
        },
        "effective_config": {
            "required_fields": ["server_url", "namespace", "profile", "auth", "tls", "identity"],
        },
        "redaction": {
            "never_echo": ["bearer_tokens", "private_keys", "raw_authorization_headers"],
        },
    }


def control_plane_manifest() -> dict[str, Any]:
    """Return the ``control_plane`` object of cluster info (version, response and request contracts)."""
    return {
        "version": CONTROL_PLANE_VERSION,
        "header": CONTROL_PLANE_HEADER,
        "response_contract": {
            "schema": RESPONSE_SCHEMA,
            "version": 1,
            "contract": {"schema": RESPONSE_CONTRACT_SCHEMA, "version": 1},
            "projected_fields": list(PROJECTED_FIELDS),
            "operations": {
                op: {"required_fields": list(required), "success_fields": list(success)}
                for op, (required, success) in OPERATION_CONTRACTS.items()
            },
        },
        "request_contract": {
            "schema": REQUEST_CONTRACT_SCHEMA,
            "version": 1,
            "operations": {
                "list": {
                    "fields": {
                        "status": {
                            "canonical_values": ["running", "completed", "failed"],
                            "rejected_aliases": {
                                "cancelled": "failed",
                                "terminated": "failed",
                                "pending": "running",
                                "waiting": "running",
                            },
                        },
                    },
                },
                "start": {
                    "fields": {
                        "duplicate_policy": {
                            "canonical_values": ["fail", "use-existing"],
                            "rejected_aliases": {"use_existing": "use-existing"},
                        },
                        "execution_timeout_seconds": {"type": "integer", "minimum": 1},
                        "run_timeout_seconds": {"type": "integer", "minimum": 1},
                        "payload_codec": {"canonical_values": [PAYLOAD_CODEC]},
                    },
                    "unsupported_fields": [
                        "workflow_execution_timeout",
                        "workflow_run_timeout",
                        "workflow_task_timeout",
                        "retry_policy",
                        "idempotency_key",
                        "request_id",
                    ],
                },
                "update": {
                    "fields": {
                        "wait_for": {"canonical_values": ["accepted", "completed"]},
                    },
                    "removed_fields": {"wait_policy": "wait_for"},
                },
            },
        },
    }


def cluster_info_document(
    *,
    server_id: str,
    max_payload_bytes: int,
    capabilities: dict[str, Any],
) -> dict[str, Any]:
    """Assemble the static body of ``GET /api/cluster/info``.

    Args:
        server_id: this process's identity.
        max_payload_bytes: the request body limit in force.
        capabilities: the worker-plane ``server_capabilities``.

    Returns:
        The document; the handler adds nothing per request.
    """
    return {
        "server_id": server_id,
        "version": server_version(),
        "default_namespace": "default",
        "supported_sdk_versions": {"python": ">=0.1"},
        "capabilities": {
            "workflow_tasks": True,
            "activity_tasks": True,
            "signals": True,
            "queries": True,
            "updates": True,
            "schedules": False,
            "search_attributes": True,
            "history_export": True,
            "continue_as_new": True,
            "child_workflows": True,
            "activity_timeouts": True,
            "activity_retry_policy": True,
            "non_retryable_failures": True,
            "payload_codec_envelope": True,
            "payload_codecs": [PAYLOAD_CODEC],
            "response_compression": list(RESPONSE_ENCODINGS),
        },
        "limits": {"max_payload_bytes": max_payload_bytes},
        "client_compatibility": {
            "schema": "durable-workflow.v2.client-compatibility",
            "version": 1,
            "authority": "protocol_manifests",
            "top_level_version_role": "informational",
            "fail_closed": True,
            "required_protocols": {
                "control_plane": {"version": CONTROL_PLANE_VERSION, "request_contract_version": 1},
                "worker_protocol": {"version": WORKER_PROTOCOL_VERSION},
            },
        },
        "auth_composition_contract": auth_composition_contract(),
        "control_plane": control_plane_manifest(),
        "worker_protocol": {
            "version": WORKER_PROTOCOL_VERSION,
            "server_capabilities": capabilities,
        },
    }
