"""Every checked-in history fixture replays to its expected command or is rejected as it says."""

from __future__ import annotations

import base64
from typing import Any

import pytest
import wf_support as s

from durable_workflow import serializer, workflow
from durable_workflow.errors import InvalidPayloadFraming, UnsupportedPayloadCodec
from durable_workflow.workflow import CompleteWorkflow, ScheduleActivity

AVRO_GOLDEN = [
    "golden_history/python-sdk-2.0.0-rc.30-avro.json",
    "golden_history/python-sdk-2.0.0-rc.30-avro-saga.json",
    "golden_history/python-sdk-2.0.0-rc.30-avro-signal.json",
    "golden_history/python-sdk-2.0.0-rc.30-avro-timeout.json",
    "golden_history/python-sdk-2.0.0-rc.30-avro-version.json",
]


def _cases(path: str) -> list[Any]:
    return [
        pytest.param(case, id=f"{path.split('/')[-1]}::{case['name']}")
        for case in s.load_fixture(path)["cases"]
    ]


def _assert_expected(command: Any, expected: dict[str, Any]) -> None:
    if expected["command_type"] == "CompleteWorkflow":
        assert command == CompleteWorkflow(expected["result"])
    else:
        assert expected["command_type"] == "ScheduleActivity"
        assert isinstance(command, ScheduleActivity)
        assert command.activity_type == expected["activity_type"]
        assert command.arguments == expected["arguments"]


@pytest.mark.parametrize("case", [c for path in AVRO_GOLDEN for c in _cases(path)])
def test_avro_golden_history_replays_to_the_expected_command(case: dict[str, Any]) -> None:
    cls = workflow.registry()[case["workflow_type"]]
    outcome = workflow.replay(cls, case["history"], case["start_input"])
    assert len(outcome.commands) == 1
    _assert_expected(outcome.commands[0], case["expected"])
    # The same through the wire shape: it must encode.
    assert workflow.commands_to_server_commands(outcome.commands, "golden")[0]["type"] in (
        "complete_workflow",
        "schedule_activity",
    )


def _carries_payload(case: dict[str, Any]) -> bool:
    return any(
        key in event["payload"]
        for event in case["history"]
        for key in ("result", "arguments", "value", "output")
    )


@pytest.mark.parametrize("case", _cases("golden_history/python-sdk-0.3.1.json"))
def test_json_era_golden_history_is_rejected(case: dict[str, Any]) -> None:
    cls = workflow.registry()[case["workflow_type"]]
    # The 0.3.1 recordings come from the JSON codec era: a task naming that codec is refused.
    with pytest.raises(UnsupportedPayloadCodec):
        workflow.replay(cls, case["history"], case["start_input"], payload_codec="json")
    if _carries_payload(case):
        # Even under the Avro default, the JSON text itself is recognised and refused.
        with pytest.raises(UnsupportedPayloadCodec):
            workflow.replay(cls, case["history"], case["start_input"])
    else:
        # A case without any payload holds nothing codec-specific, so it replays as recorded.
        outcome = workflow.replay(cls, case["history"], case["start_input"])
        _assert_expected(outcome.commands[0], case["expected"])


def test_json_tagged_workflow_start_is_rejected() -> None:
    fixture = s.load_fixture("replay_regressions/json-tagged-empty-workflow-start-rejected.json")
    assert fixture["expected"]["error"] == UnsupportedPayloadCodec.reason
    replayer = workflow.Replayer(workflows=s.FIXTURE_WORKFLOWS)
    with pytest.raises(UnsupportedPayloadCodec):
        replayer.replay(fixture["history"])


@pytest.mark.parametrize(
    "name",
    ["parallel-group-metadata-emission.json", "nested-parallel-group-path"],
)
def test_parallel_group_metadata_is_emitted(name: str) -> None:
    if name.endswith(".json"):
        fixture = s.load_fixture(f"replay_regressions/{name}")
        history = fixture["history"]
        expected = fixture["expected"]["command_sequence"]
    else:
        # The upstream nested-path case, rebuilt here: [activity, [child, timer]].
        history = [s.event("WorkflowStarted", {"workflow_type": "tests.replay.nested-parallel-path"})]
        outer = {
            "parallel_group_id": "parallel-calls:1:3",
            "parallel_group_kind": "mixed",
            "parallel_group_base_sequence": 1,
            "parallel_group_size": 3,
        }
        inner = {
            "parallel_group_id": "parallel-calls:2:2",
            "parallel_group_kind": "mixed",
            "parallel_group_base_sequence": 2,
            "parallel_group_size": 2,
        }
        expected = [
            {
                "type": "schedule_activity",
                **outer,
                "parallel_group_index": 0,
                "parallel_group_path": [{**outer, "parallel_group_index": 0}],
            },
            {
                "type": "start_child_workflow",
                **inner,
                "parallel_group_index": 0,
                "parallel_group_path": [
                    {**outer, "parallel_group_index": 1},
                    {**inner, "parallel_group_index": 0},
                ],
            },
            {
                "type": "start_timer",
                **inner,
                "parallel_group_index": 1,
                "parallel_group_path": [
                    {**outer, "parallel_group_index": 2},
                    {**inner, "parallel_group_index": 1},
                ],
            },
        ]
    outcome = workflow.Replayer(workflows=s.FIXTURE_WORKFLOWS).replay(history)
    wire = workflow.commands_to_server_commands(outcome.commands, "fixtures")
    assert len(wire) == len(expected)
    for produced, wanted in zip(wire, expected, strict=True):
        assert {key: produced.get(key) for key in wanted} == wanted


def test_parallel_completion_order_binds_results_by_position() -> None:
    fixture = s.load_fixture("replay_regressions/server-2.0.0-rc.39-parallel-completion-order.json")
    outcome = workflow.Replayer(workflows=s.FIXTURE_WORKFLOWS).replay(fixture["history"])
    (wire,) = workflow.commands_to_server_commands(outcome.commands, "fixtures")
    assert wire["type"] == fixture["expected"]["type"]
    assert serializer.decode_envelope(wire["result"]) == fixture["expected"]["result"]


@pytest.mark.parametrize(
    "name",
    [
        "update-signal-condition-timeout-explicit-identity-avro.json",
        "update-signal-condition-timer-sequence-avro.json",
    ],
)
def test_update_signal_condition_histories_replay(name: str) -> None:
    fixture = s.load_fixture(f"replay_regressions/{name}")
    outcome = workflow.Replayer(workflows=s.FIXTURE_WORKFLOWS).replay(fixture["history"])
    assert fixture["expected"]["command_type"] == "CompleteWorkflow"
    assert outcome.commands == [CompleteWorkflow(fixture["expected"]["result"])]


@pytest.mark.parametrize(
    "name",
    ["update-signal-condition-timeout-explicit-identity.json", "update-signal-condition-timer-sequence.json"],
)
def test_non_avro_replay_regressions_are_rejected(name: str) -> None:
    fixture = s.load_fixture(f"replay_regressions/{name}")
    assert "payload_codec" not in fixture["workflow"]
    with pytest.raises(UnsupportedPayloadCodec):
        workflow.Replayer(workflows=s.FIXTURE_WORKFLOWS).replay(fixture["history"])


def test_codec_regression_long_zero_round_trips_through_replay() -> None:
    fixture = s.load_fixture("codec_regressions/avro-value-v1-long-zero.json")
    wire_blob = fixture["framing"]["wire_base64"]
    history = [
        s.started("golden.single-activity", ["Ada"]),
        s.event("ActivityScheduled", {"sequence": 1, "activity_type": "golden.greet"}),
        s.event("ActivityCompleted", {"sequence": 1, "result": wire_blob, "payload_codec": "avro"}),
    ]
    outcome = workflow.replay(s.SingleActivityWorkflow, history, ["Ada"])
    assert outcome.commands == [CompleteWorkflow(0)]
    (wire,) = workflow.commands_to_server_commands(outcome.commands, "fixtures")
    assert wire["result"] == {"codec": "avro", "blob": wire_blob}


@pytest.mark.parametrize(
    "name", ["json-tagged-null-payload-codec-rejected.json", "json-tagged-payload-codec-rejected.json"]
)
def test_codec_regression_json_tagged_values_are_rejected(name: str) -> None:
    fixture = s.load_fixture(f"codec_regressions/{name}")
    assert fixture["failure_policy"]["error"] == "unsupported_payload_codec"
    text = base64.b64decode(fixture["framing"]["wire_base64"]).decode()
    prefix = [s.started("golden.single-activity", ["Ada"])]
    tagged_envelope = s.event("ActivityCompleted", {"sequence": 1, "result": {"codec": "json", "blob": text}})
    tagged_event = s.event("ActivityCompleted", {"sequence": 1, "result": text, "payload_codec": "json"})
    for result_event in (tagged_envelope, tagged_event):
        with pytest.raises(UnsupportedPayloadCodec):
            workflow.replay(s.SingleActivityWorkflow, [*prefix, result_event], ["Ada"])


def test_codec_regression_missing_or_null_task_codec_is_rejected() -> None:
    fixture = s.load_fixture("codec_regressions/missing-null-root-task-codecs-rejected.json")
    roots = [{entry["key"]: None for entry in item["entries"]} for item in fixture["value"]["items"]]
    assert roots == [{}, {"payload_codec": None}]
    replayer = workflow.Replayer(workflows=s.FIXTURE_WORKFLOWS)
    for root in roots:
        with pytest.raises(UnsupportedPayloadCodec):
            replayer.replay({**root, "history_events": [s.started("golden.single-activity", ["Ada"])]})
    # The same task root naming Avro is accepted.
    outcome = replayer.replay(
        {"payload_codec": "avro", "history_events": [s.started("golden.single-activity", ["Ada"])]}
    )
    assert isinstance(outcome.commands[0], ScheduleActivity)


def test_garbage_history_value_is_a_framing_error_not_a_codec_error() -> None:
    history = [
        s.started("golden.single-activity", ["Ada"]),
        s.event("ActivityCompleted", {"sequence": 1, "result": "not base64 at all!"}),
    ]
    with pytest.raises(InvalidPayloadFraming):
        workflow.replay(s.SingleActivityWorkflow, history, ["Ada"])
