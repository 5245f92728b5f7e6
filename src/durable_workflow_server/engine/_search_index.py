"""Keeping the typed search-attribute rows of a run in step with ``runs.search_attributes``.

Every value is stored in each column its JSON type allows (an int also as a double, an ISO
timestamp string also as epoch seconds), so a query compares on the column of the attribute's
registered type without converting rows. Old rows of a changed attribute are marked
``live = 0`` rather than deleted, which keeps every write an insert or an update.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from durable_workflow_server.storage import Mutation, PatchWhere, Put, RunRow, SearchAttributeRow


def parse_time(value: str) -> float | None:
    """Epoch seconds of an ISO-8601 timestamp (a ``Z`` suffix allowed), else None."""
    if len(value) < 10 or not value[:4].isdigit() or value[4] != "-":
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return None
    return parsed.timestamp()


def _row(run: RunRow, name: str, position: int, value: Any) -> SearchAttributeRow:
    row = SearchAttributeRow(
        run_id=run.run_id, name=name, position=position, namespace=run.namespace, live=True
    )
    if isinstance(value, bool):
        row.int_value = int(value)
    elif isinstance(value, int):
        row.int_value = value
        row.double_value = float(value)
    elif isinstance(value, float):
        row.double_value = value
    elif isinstance(value, str):
        row.text_value = value
        row.time_value = parse_time(value)
    return row


def index_search_attributes(
    run: RunRow, changed: dict[str, Any], m: Mutation, *, fresh: bool = False
) -> None:
    """Add to ``m`` the index writes for ``changed`` (name -> new value, None deletes).

    Args:
        run: the run the attributes belong to.
        changed: the attributes set or removed by this write.
        m: the mutation to extend.
        fresh: the run is new, so there are no old rows to retire.
    """
    for name, value in changed.items():
        if not fresh:
            m.ops.append(
                PatchWhere(SearchAttributeRow, {"run_id": run.run_id, "name": name}, {"live": False})
            )
        if value is None:
            continue
        values = value if isinstance(value, list) else [value]
        for position, item in enumerate(values):
            if item is not None:
                m.ops.append(Put(_row(run, name, position, item)))
