"""Small read-only result types for control-plane answers.

Each type keeps the fields callers use, parsed (timestamps become aware datetimes), plus
``raw``: the whole answer, so a field the server adds later is reachable without a release.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from durable_workflow import serializer
from durable_workflow.protocol import TERMINAL_RUN_STATUSES

__all__ = ["WorkflowDescription", "WorkflowListPage", "WorkflowSummary", "parse_timestamp"]


def parse_timestamp(value: Any) -> datetime | None:
    """Parse a server timestamp in either upstream format (``…000000Z`` or ``…+00:00``).

    Args:
        value: the JSON value.

    Returns:
        An aware datetime, or None when the value is missing or not a timestamp.
    """
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


@dataclass(frozen=True, slots=True)
class WorkflowSummary:
    """One row of a workflow list (one run)."""

    workflow_id: str
    run_id: str | None
    workflow_type: str | None
    status: str
    status_bucket: str | None
    is_terminal: bool
    task_queue: str | None
    business_key: str | None
    started_at: datetime | None
    closed_at: datetime | None
    search_attributes: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> WorkflowSummary:
        """Build from one entry of ``GET /api/workflows``."""
        status = str(data.get("status") or "")
        is_terminal = data.get("is_terminal")
        return cls(
            workflow_id=str(data.get("workflow_id") or ""),
            run_id=_str(data.get("run_id")),
            workflow_type=_str(data.get("workflow_type")),
            status=status,
            status_bucket=_str(data.get("status_bucket")),
            is_terminal=bool(is_terminal) if is_terminal is not None else status in TERMINAL_RUN_STATUSES,
            task_queue=_str(data.get("task_queue")),
            business_key=_str(data.get("business_key")),
            started_at=parse_timestamp(data.get("started_at")),
            closed_at=parse_timestamp(data.get("closed_at")),
            search_attributes=_dict(data.get("search_attributes")),
            raw=data,
        )


@dataclass(frozen=True, slots=True)
class WorkflowListPage:
    """One page of ``list_workflows``; pass ``next_page_token`` back for the next one."""

    workflows: list[WorkflowSummary]
    next_page_token: str | None
    workflow_count: int | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> WorkflowListPage:
        """Build from the body of ``GET /api/workflows``."""
        rows = data.get("workflows")
        return cls(
            workflows=[WorkflowSummary.from_json(r) for r in rows if isinstance(r, dict)]
            if isinstance(rows, list)
            else [],
            next_page_token=_str(data.get("next_page_token")) or None,
            workflow_count=_int(data.get("workflow_count")),
        )


@dataclass(frozen=True, slots=True)
class WorkflowDescription:
    """A workflow run as ``describe`` reports it.

    ``input`` and ``output`` decode the run's payload envelopes on access; the raw envelopes
    stay in ``raw``.
    """

    workflow_id: str
    run_id: str | None
    workflow_type: str | None
    status: str
    status_bucket: str | None
    is_terminal: bool
    task_queue: str | None
    namespace: str | None
    business_key: str | None
    run_number: int | None
    run_count: int | None
    is_current_run: bool | None
    closed_reason: str | None
    started_at: datetime | None
    closed_at: datetime | None
    memo: dict[str, Any] = field(default_factory=dict)
    search_attributes: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> WorkflowDescription:
        """Build from the body of ``GET /api/workflows/{id}[/runs/{run_id}]``."""
        status = str(data.get("status") or "")
        is_terminal = data.get("is_terminal")
        is_current = data.get("is_current_run")
        return cls(
            workflow_id=str(data.get("workflow_id") or ""),
            run_id=_str(data.get("run_id")),
            workflow_type=_str(data.get("workflow_type")),
            status=status,
            status_bucket=_str(data.get("status_bucket")),
            is_terminal=bool(is_terminal) if is_terminal is not None else status in TERMINAL_RUN_STATUSES,
            task_queue=_str(data.get("task_queue")),
            namespace=_str(data.get("namespace")),
            business_key=_str(data.get("business_key")),
            run_number=_int(data.get("run_number")),
            run_count=_int(data.get("run_count")),
            is_current_run=is_current if isinstance(is_current, bool) else None,
            closed_reason=_str(data.get("closed_reason")),
            started_at=parse_timestamp(data.get("started_at")),
            closed_at=parse_timestamp(data.get("closed_at")),
            memo=_dict(data.get("memo")),
            search_attributes=_dict(data.get("search_attributes")),
            raw=data,
        )

    @property
    def input(self) -> list[Any]:
        """The run's start arguments, decoded (``[]`` when there are none)."""
        envelope = self.raw.get("input_envelope")
        if envelope is None:
            plain = self.raw.get("input")
            return list(plain) if isinstance(plain, list) else []
        value = serializer.decode_envelope(envelope)
        return value if isinstance(value, list) else [value]

    @property
    def output(self) -> Any:
        """The run's result, decoded; None while the run is open or when it returned None."""
        envelope = self.raw.get("output_envelope")
        if envelope is None:
            return None
        return serializer.decode_envelope(envelope)
