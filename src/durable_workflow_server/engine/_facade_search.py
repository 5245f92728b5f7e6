"""The search-attribute (control-plane §8) and history-export (§6.10) part of the
:class:`Engine` facade."""

from __future__ import annotations

from typing import Any

from durable_workflow_server.engine import _export, _search_attributes
from durable_workflow_server.engine._facade_base import FacadeBase, storage_errors


class SearchAttributesPlane(FacadeBase):
    """List, register and delete custom search attributes."""

    @storage_errors
    async def list_search_attributes(self, ns: str) -> dict[str, Any]:
        """The system and registered custom attributes of a namespace.

        Args:
            ns: the lower-cased namespace (the API checked that it exists).

        Returns:
            ``{"system_attributes": {name: type}, "custom_attributes": {name: type}}``.
        """
        return await _search_attributes.list_attributes(self._core, ns)

    @storage_errors
    async def register_search_attribute(self, ns: str, body: dict[str, Any]) -> dict[str, Any]:
        """Register a custom attribute.

        Args:
            ns: the lower-cased namespace.
            body: ``{"name", "type"}``; type is keyword, text, int, double, bool, datetime or
                keyword_list.

        Returns:
            ``{"name", "type", "outcome": "created"}``.

        Raises:
            EngineError: 422 ``validation_failed``/``search_attribute_limit_reached``, 409
                ``name_reserved``/``attribute_already_exists``.
        """
        return await _search_attributes.register(self._core, ns, body)

    @storage_errors
    async def delete_search_attribute(self, ns: str, name: str) -> dict[str, Any]:
        """Delete a custom attribute's registration.

        Args:
            ns: the lower-cased namespace.
            name: the attribute.

        Returns:
            ``{"name", "outcome": "deleted"}``.

        Raises:
            EngineError: 409 ``system_attribute``, 404 ``attribute_not_found``.
        """
        return await _search_attributes.delete(self._core, ns, name)

    @storage_errors
    async def export_history(self, ns: str, workflow_id: str, run_id: str | None = None) -> dict[str, Any]:
        """A run's whole history as a replay bundle (control-plane §6.10).

        Args:
            ns: the lower-cased namespace.
            workflow_id: the workflow id.
            run_id: a run of it; None for the current run.

        Returns:
            ``{"schema", "schema_version", "exported_at", "history_complete", "payload_codec",
            "workflow", "payloads", "history_events", "integrity", ...}``.

        Raises:
            EngineError: 404 ``instance_not_found`` / ``run_not_found``.
        """
        return await _export.export_history(self._core, ns, workflow_id, run_id)
