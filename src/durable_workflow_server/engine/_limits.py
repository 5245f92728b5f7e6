"""Upper bounds on numbers taken from requests.

JSON allows integers far beyond what a timestamp, a SQLite INTEGER or a datetime can hold;
bounding them at validation turns absurd input into a 422 instead of an overflow deep
inside storage.
"""

from __future__ import annotations

#: Longest timeout, delay or backoff accepted: ten years.
MAX_DURATION_SECONDS = 10 * 365 * 24 * 3600
#: Most attempts a retry policy may ask for.
MAX_ATTEMPTS = 1_000_000
#: Largest concurrency a worker may advertise.
MAX_CONCURRENCY = 1_000_000
#: Range of plain integers stored as they are (version markers).
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
