"""Parallel groups: the shape of a yielded (possibly nested) list and its wire keys.

A yielded list is flattened to leaves in position order. Every list, nested or not, is a
group; a leaf's ``parallel_group_path`` lists the groups that contain it from the outermost
to the innermost, and the innermost entry is repeated as the leaf's top-level keys. Within a
group, ``parallel_group_base_sequence + parallel_group_index`` is the leaf's workflow sequence.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from durable_workflow.errors import WorkflowDefinitionError
from durable_workflow.workflow import _history as h

#: Leaf kinds that may run in parallel (plain lists cannot hold conditions).
GROUPABLE = frozenset((h.ACTIVITY, h.TIMER, h.CHILD))

# Group kind and the plural used in ``parallel_group_id`` when every leaf has one kind.
_NAMES = {
    h.ACTIVITY: ("activity", "activities"),
    h.CHILD: ("child", "children"),
    h.TIMER: ("timer", "timers"),
}

#: One level of a leaf's path as the code shapes it: (group size, index within the group).
PathShape = list[tuple[int, int]]


@dataclass
class Group:
    """One (possibly nested) list: its first leaf, its leaf count and its leaf kinds."""

    start: int
    size: int = 0
    kinds: set[str] = field(default_factory=set)


@dataclass
class Leaf:
    """One command of a yielded list and the groups (outermost first) that hold it."""

    command: Any
    kind: str
    chain: tuple[int, ...]


def flatten(items: list[Any] | tuple[Any, ...], kinds: dict[type, str]) -> tuple[list[Leaf], list[Group]]:
    """Flatten a yielded list into leaves and groups.

    Raises:
        WorkflowDefinitionError: a member is not an activity, timer or child workflow.
    """
    leaves: list[Leaf] = []
    groups: list[Group] = []

    def walk(node: list[Any] | tuple[Any, ...], chain: tuple[int, ...]) -> None:
        group = Group(start=len(leaves))
        inner = (*chain, len(groups))
        groups.append(group)
        for item in node:
            if isinstance(item, list | tuple):
                walk(item, inner)
                continue
            kind = kinds.get(type(item))
            if kind not in GROUPABLE:
                raise WorkflowDefinitionError(
                    f"{item!r} cannot run in a parallel list; only activities, timers and child workflows can"
                )
            leaves.append(Leaf(item, kind, inner))
        group.size = len(leaves) - group.start
        group.kinds = {leaf.kind for leaf in leaves[group.start :]}

    walk(items, ())
    return leaves, groups


def shape(leaves: list[Leaf], groups: list[Group], index: int) -> PathShape:
    """The (size, index) of each non-empty group on leaf ``index``'s path."""
    return [(groups[g].size, index - groups[g].start) for g in leaves[index].chain if groups[g].size]


def wire_keys(leaves: list[Leaf], groups: list[Group], index: int, sequences: list[int]) -> dict[str, Any]:
    """The ``parallel_group_*`` keys of leaf ``index``, given every leaf's workflow sequence."""
    path = []
    for group_id in leaves[index].chain:
        group = groups[group_id]
        if not group.size:
            continue
        only = next(iter(group.kinds)) if len(group.kinds) == 1 else None
        kind, plural = _NAMES[only] if only is not None else ("mixed", "calls")
        base = sequences[group.start]
        path.append(
            {
                "parallel_group_id": f"parallel-{plural}:{base}:{group.size}",
                "parallel_group_kind": kind,
                "parallel_group_base_sequence": base,
                "parallel_group_size": group.size,
                "parallel_group_index": index - group.start,
            }
        )
    keys: dict[str, Any] = dict(path[-1])
    keys["parallel_group_path"] = path
    return keys


def same_path(recorded: Any, expected: PathShape | None) -> bool:
    """Compare a recorded ``parallel_group_path`` with the code's shape.

    Only sizes and indexes are compared: group ids embed sequence numbers, which a server
    that numbers by event position assigns differently.
    """
    if not recorded and not expected:
        return True
    if not isinstance(recorded, list) or expected is None or len(recorded) != len(expected):
        return False
    for entry, (size, index) in zip(recorded, expected, strict=True):
        if not isinstance(entry, dict):
            return False
        if entry.get("parallel_group_size") != size or entry.get("parallel_group_index") != index:
            return False
    return True


def rebuild(items: list[Any] | tuple[Any, ...], values: Iterator[Any]) -> list[Any]:
    """Nest leaf results (in position order) back into the shape of the yielded list."""
    return [rebuild(item, values) if isinstance(item, list | tuple) else next(values) for item in items]
