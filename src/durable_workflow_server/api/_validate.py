"""Type checks of request fields, collected into one 422 ``validation_failed``.

The API checks shape (present, right JSON type, small ranges that are part of the HTTP
contract); the engine checks meaning. Every problem in a request is reported at once, keyed by
field path, as ``errors`` and ``validation_errors``.
"""

from __future__ import annotations

from typing import Any

from durable_workflow_server.api._errors import validation_failed

#: Every integer must fit a signed 64-bit column; larger ones would fail deep in storage.
_INT_LIMIT = 2**63 - 1
#: A duration must end on a representable date (timestamps are rendered as ISO-8601); a
#: century is beyond any real workflow, timer or activity.
MAX_DURATION_SECONDS = 100 * 365 * 24 * 3600


class Fields:
    """Read typed fields out of a JSON object, remembering every problem.

    Call :meth:`done` after the last read; it raises when anything was wrong.
    """

    __slots__ = ("errors", "source")

    def __init__(self, source: dict[str, Any]) -> None:
        """Wrap a decoded JSON object (or parsed query parameters).

        Args:
            source: the object to read from.
        """
        self.source = source
        self.errors: dict[str, list[str]] = {}

    def fail(self, field: str, message: str) -> None:
        """Record a problem with ``field``.

        Args:
            field: dotted path of the field.
            message: what is wrong, as a sentence.
        """
        self.errors.setdefault(field, []).append(message)

    def string(self, field: str, *, required: bool = False, max_length: int = 255) -> str | None:
        """Read a string field.

        Args:
            field: the key.
            required: whether absence (or null) is an error.
            max_length: the longest accepted value, in characters.

        Returns:
            The value, or ``None`` when absent, null or wrong.
        """
        value = self.source.get(field)
        if value is None:
            if required:
                self.fail(field, f"The {field} field is required.")
            return None
        if not isinstance(value, str):
            self.fail(field, f"The {field} field must be a string.")
            return None
        if required and not value.strip():
            self.fail(field, f"The {field} field is required.")
            return None
        if len(value) > max_length:
            self.fail(field, f"The {field} field must not be greater than {max_length} characters.")
            return None
        return value

    def integer(
        self,
        field: str,
        *,
        required: bool = False,
        minimum: int | None = None,
        maximum: int | None = None,
    ) -> int | None:
        """Read an integer field; integral floats and (for query strings) digit strings pass.

        Args:
            field: the key.
            required: whether absence (or null) is an error.
            minimum: the smallest accepted value, if bounded.
            maximum: the largest accepted value, if bounded.

        Returns:
            The value, or ``None`` when absent, null or wrong.
        """
        value = self.source.get(field)
        if value is None:
            if required:
                self.fail(field, f"The {field} field is required.")
            return None
        number: int | None = None
        if isinstance(value, bool):
            number = None
        elif isinstance(value, int):
            number = value
        elif isinstance(value, float) and value.is_integer():
            number = int(value)
        elif isinstance(value, str):
            text = value.strip()
            if text.lstrip("-").isdigit() and len(text) < 19:
                number = int(text)
        if number is None or not -_INT_LIMIT <= number <= _INT_LIMIT:
            self.fail(field, f"The {field} field must be an integer.")
            return None
        if minimum is not None and number < minimum:
            self.fail(field, f"The {field} field must be at least {minimum}.")
            return None
        if maximum is not None and number > maximum:
            self.fail(field, f"The {field} field must not be greater than {maximum}.")
            return None
        return number

    def number(self, field: str) -> float | None:
        """Read a finite number field (integer or fraction).

        Args:
            field: the key.

        Returns:
            The value as a float, or ``None`` when absent, null or wrong.
        """
        value = self.source.get(field)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.fail(field, f"The {field} field must be a number.")
            return None
        number = float(value)
        if number != number or number in (float("inf"), float("-inf")):
            self.fail(field, f"The {field} field must be a finite number.")
            return None
        return number

    def boolean(self, field: str) -> bool | None:
        """Read a boolean field; query strings may say true/false/1/0.

        Args:
            field: the key.

        Returns:
            The value, or ``None`` when absent, null or wrong.
        """
        value = self.source.get(field)
        if value is None or isinstance(value, bool):
            return value
        if isinstance(value, str):
            lowered = value.strip().lower()
            if lowered in ("true", "1", "yes"):
                return True
            if lowered in ("false", "0", "no", ""):
                return False
        self.fail(field, f"The {field} field must be true or false.")
        return None

    def mapping(self, field: str, *, required: bool = False) -> dict[str, Any] | None:
        """Read a JSON-object field.

        Args:
            field: the key.
            required: whether absence (or null) is an error.

        Returns:
            The value, or ``None`` when absent, null or wrong.
        """
        value = self.source.get(field)
        if value is None:
            if required:
                self.fail(field, f"The {field} field is required.")
            return None
        if not isinstance(value, dict):
            self.fail(field, f"The {field} field must be an object.")
            return None
        return value

    def array(self, field: str, *, required: bool = False, min_items: int = 0) -> list[Any] | None:
        """Read a JSON-array field.

        Args:
            field: the key.
            required: whether absence (or null) is an error.
            min_items: the fewest items accepted.

        Returns:
            The value, or ``None`` when absent, null or wrong.
        """
        value = self.source.get(field)
        if value is None:
            if required:
                self.fail(field, f"The {field} field is required.")
            return None
        if not isinstance(value, list):
            self.fail(field, f"The {field} field must be an array.")
            return None
        if len(value) < min_items:
            self.fail(field, f"The {field} field must have at least {min_items} item(s).")
            return None
        return value

    def done(self) -> None:
        """Raise the collected problems, if any.

        Raises:
            ApiError: 422 ``validation_failed``.
        """
        if self.errors:
            raise validation_failed(self.errors)
