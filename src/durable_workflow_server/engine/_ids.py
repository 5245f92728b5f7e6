"""Identifiers: lower-case ULIDs (time-ordered, so ids sort by creation)."""

from __future__ import annotations

import os
import random
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
# Ids need uniqueness, not secrecy: a PRNG seeded from the OS per process avoids a system
# call per id (several ids are made per request). Processes get different seeds.
_random = random.Random(os.urandom(32))


# Two characters per 10 bits: half the loop steps of one character per 5 bits.
_PAIRS = [_ALPHABET[i >> 5] + _ALPHABET[i & 31] for i in range(1024)]
_SHIFTS = tuple(range(120, -1, -10))  # 13 pairs: 26 characters, 130 bits (the top 2 are 0)


def new_id() -> str:
    """A new 26-character lower-case ULID."""
    value = (int(time.time() * 1000) << 80) | _random.getrandbits(80)
    return "".join([_PAIRS[(value >> shift) & 1023] for shift in _SHIFTS])
