"""The opt-in adapter from rich Python objects to plain payload values.

The codecs accept only the payload value model (None, bool, int, float, bytes, str, lists and
str-keyed dicts). Callers who pass enums, dates, UUIDs, decimals, dataclasses, pydantic models or
attrs classes run them through :func:`to_payload_value` first; decoding gives back the plain
form, and turning it back into the rich type is the caller's business.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import uuid
from typing import Any

_PLAIN = (str, int, float, bytes, type(None))


def to_payload_value(obj: Any) -> Any:
    """Convert an object, recursively, into the payload value model.

    Conversions: an enum becomes its value; ``date``, ``datetime`` and ``time`` become ISO 8601
    strings; ``UUID`` and ``Decimal`` become ``str``; a dataclass, a pydantic model (anything with
    ``model_dump``) or an attrs instance becomes a dict of its fields; tuples, sets and frozensets
    become lists (sets sorted when their items allow it, so the payload does not depend on hash
    order and replays stay deterministic); dict keys and values are converted too. Anything else
    is returned unchanged and left for the codec to accept or refuse.

    Args:
        obj: The object to convert.

    Returns:
        A value built from plain payload types wherever a conversion applies.
    """
    if isinstance(obj, enum.Enum):
        return to_payload_value(obj.value)
    if isinstance(obj, _PLAIN):
        return obj
    if isinstance(obj, dict):
        return {to_payload_value(k): to_payload_value(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_payload_value(v) for v in obj]
    if isinstance(obj, (set, frozenset)):
        items = [to_payload_value(v) for v in obj]
        try:
            items.sort()
        except TypeError:
            pass  # mixed, unorderable items: keep iteration order rather than fail
        return items
    if isinstance(obj, (datetime.date, datetime.time)):  # datetime is a date subclass
        return obj.isoformat()
    if isinstance(obj, (uuid.UUID, decimal.Decimal)):
        return str(obj)
    if isinstance(obj, type):
        return obj  # a class, not an instance: nothing below applies
    if dataclasses.is_dataclass(obj):
        return {f.name: to_payload_value(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    model_dump = getattr(obj, "model_dump", None)
    if callable(model_dump):
        return to_payload_value(model_dump())
    if getattr(type(obj), "__attrs_attrs__", None) is not None:
        import attrs  # only reached for attrs instances, so attrs is installed

        return to_payload_value(attrs.asdict(obj, recurse=False))
    return obj
