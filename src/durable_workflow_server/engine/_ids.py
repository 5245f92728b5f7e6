"""Identifiers: lower-case ULIDs (time-ordered, so ids sort by creation)."""

from __future__ import annotations

import os
import random
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
# Ids need uniqueness, not secrecy: a PRNG seeded from the OS per process avoids a system
# call per id (several ids are made per request). Processes get different seeds.
_random = random.Random(os.urandom(32))


def new_id() -> str:
    """A new 26-character lower-case ULID."""
    value = (int(time.time() * 1000) << 80) | _random.getrandbits(80)
    chars = []
    for _ in range(26):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))
