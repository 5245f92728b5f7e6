"""Pure pieces of the API: encoding choice, field checks, the control_plane block, manifests."""

from __future__ import annotations

import gzip

import orjson
import pytest

from durable_workflow_server.api import ApiError
from durable_workflow_server.api._json import choose_encoding, encode_headers, json_response
from durable_workflow_server.api._manifest import auth_composition_contract, server_capabilities
from durable_workflow_server.api._render import control_plane_block
from durable_workflow_server.api._validate import Fields


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("", None),
        ("identity", None),
        ("gzip", "gzip"),
        ("gzip, deflate", "gzip"),
        ("deflate", "deflate"),
        ("deflate, gzip", "gzip"),
        ("deflate;q=1.0, gzip;q=0.5", "deflate"),
        ("gzip;q=0, deflate", "deflate"),
        ("*", "gzip"),
        ("br;q=1, *;q=0.1", "gzip"),
        ("gzip;q=0, deflate;q=0", None),
    ],
)
def test_choose_encoding(header: str, expected: str | None) -> None:
    assert choose_encoding(header) == expected


def test_fields_collect_every_problem_into_one_422() -> None:
    fields = Fields({"a": 1, "b": "x", "c": True, "d": 2.0, "e": [], "f": "7"})
    assert fields.string("a") is None
    assert fields.integer("b") is None
    assert fields.integer("c") is None  # a bool is not an integer
    assert fields.integer("d") == 2
    assert fields.integer("f") == 7  # query strings carry digits
    assert fields.array("e", min_items=1) is None
    assert fields.string("missing", required=True) is None
    with pytest.raises(ApiError) as caught:
        fields.done()
    error = caught.value
    assert error.status == 422 and error.reason == "validation_failed"
    assert set(error.extra["errors"]) == {"a", "b", "c", "e", "missing"}
    assert error.extra["validation_errors"] == error.extra["errors"]


def test_numbers_accept_fractions_but_not_bools_or_text() -> None:
    fields = Fields({"a": 1.5, "b": 2, "c": True, "d": "3"})
    assert fields.number("a") == 1.5
    assert fields.number("b") == 2.0
    assert fields.number("c") is None
    assert fields.number("d") is None
    assert set(fields.errors) == {"c", "d"}


def test_fields_pass_when_all_is_well() -> None:
    fields = Fields({"name": "x", "n": 3, "flag": "true"})
    assert fields.string("name", required=True) == "x"
    assert fields.integer("n", minimum=1, maximum=3) == 3
    assert fields.boolean("flag") is True
    fields.done()


def test_control_plane_block_projects_known_fields_only() -> None:
    body = {"workflow_id": "w", "run_id": "r", "status": "running", "events": [1], "outcome": "started_new"}
    block = control_plane_block("start", body)
    assert block == {
        "schema": "durable-workflow.v2.control-plane-response",
        "version": 1,
        "operation": "start",
        "workflow_id": "w",
        "run_id": "r",
        "status": "running",
        "outcome": "started_new",
    }


def test_auth_composition_contract_meets_the_2_12_gates() -> None:
    contract = auth_composition_contract()
    assert contract["schema"] == "durable-workflow.v2.auth-composition.contract"
    assert contract["version"] == 1
    env = contract["canonical_environment"]
    assert env == {
        "server_url": "DURABLE_WORKFLOW_SERVER_URL",
        "namespace": "DURABLE_WORKFLOW_NAMESPACE",
        "auth_token": "DURABLE_WORKFLOW_AUTH_TOKEN",
        "tls_verify": "DURABLE_WORKFLOW_TLS_VERIFY",
        "profile": "DW_ENV",
    }
    material = contract["auth_material"]
    assert material["token"] == {"status": "supported", "effective_config_value": "redacted"}
    assert material["mtls"]["status"] == "reserved"
    assert material["signed_headers"]["status"] == "reserved"
    required = set(contract["effective_config"]["required_fields"])
    assert {"server_url", "namespace", "profile", "auth", "tls", "identity"} <= required
    never = set(contract["redaction"]["never_echo"])
    assert {"bearer_tokens", "private_keys", "raw_authorization_headers"} <= never
    assert isinstance(contract["precedence"]["connection_values"], list)
    assert isinstance(contract["precedence"]["profile_selection"], list)


def test_server_capabilities_advertise_only_what_exists() -> None:
    caps = server_capabilities(("schedule_activity", "complete_workflow"))
    assert caps["supported_workflow_task_commands"] == ["schedule_activity", "complete_workflow"]
    assert caps["query_tasks"] is True  # query tasks are served
    assert caps["long_poll_timeout"] == 30
    assert caps["workflow_task_poll_request_idempotency"] is True
    assert (caps["history_page_size_default"], caps["history_page_size_max"]) == (500, 1000)
    for extension in ("worker_deregistration_fencing", "update_validation_tasks", "cooperative_cancellation"):
        assert extension not in caps


def test_advertised_commands_are_exactly_the_engines() -> None:
    # A drift guard until the engine exports its command list publicly.
    from durable_workflow_server.api._manifest import DEFAULT_WORKFLOW_TASK_COMMANDS
    from durable_workflow_server.engine._commands import SUPPORTED

    assert set(DEFAULT_WORKFLOW_TASK_COMMANDS) == set(SUPPORTED)


def test_poll_capacity_refusal_has_the_protocol_429_shape() -> None:
    from typing import Any, cast

    from durable_workflow_server.api import Api
    from durable_workflow_server.config import Settings

    api = Api(cast(Any, object()), Settings(), max_held_polls=1)
    api.claim_poll_slot("workflow_task", "orders")
    with pytest.raises(ApiError) as caught:
        api.claim_poll_slot("workflow_task", "orders")
    error = caught.value
    assert (error.status, error.reason) == (429, "long_poll_capacity_exhausted")
    assert error.extra["task"] is None
    assert error.extra["poll_status"] == "long_poll_capacity_exhausted"
    assert error.extra["task_kind"] == "workflow_task"
    assert error.extra["task_queue"] == "orders"
    assert error.extra["retryable"] is True
    assert 1 <= error.extra["retry_after_seconds"] <= 60
    api.release_poll_slot()
    api.claim_poll_slot("activity_task", "orders")


def test_json_response_headers_are_complete_and_compression_is_negotiated() -> None:
    small = json_response({"a": 1}, 201, None, encode_headers({"X-Extra": "yes"}))
    assert small.status_code == 201
    assert small.body == b'{"a":1}'
    assert small.raw_headers == [
        (b"vary", b"Accept-Encoding"),
        (b"x-extra", b"yes"),
        (b"content-length", b"7"),
        (b"content-type", b"application/json"),
    ]
    assert small.headers["content-type"] == "application/json"  # Starlette's view still works

    big_body = {"text": "x" * 4000}
    big = json_response(big_body, 200, b"gzip")
    assert dict(big.raw_headers)[b"content-encoding"] == b"gzip"
    assert dict(big.raw_headers)[b"content-length"] == str(len(big.body)).encode()
    assert orjson.loads(gzip.decompress(big.body)) == big_body
    assert b"content-encoding" not in dict(json_response(big_body, 200, b"identity").raw_headers)
