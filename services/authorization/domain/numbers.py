"""Authorization numbers: unique, human-readable, not guessable in sequence.

A number is the year of issue and a 40-bit value shown as 8 Crockford base-32
characters (no I, L, O, U: nothing to misread over the phone), e.g.
``UR26-8K3F-Q9ZD``. The 40-bit value is a Feistel permutation of the row's
database id, so distinct ids can never collide, whatever the volume.
"""

from __future__ import annotations

import hashlib
import re

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_HALF_BITS = 20
_HALF_MASK = (1 << _HALF_BITS) - 1
_ROUNDS = 4
MAX_ID = (1 << (2 * _HALF_BITS)) - 1
# ASCII, matched whole: \d would take any Unicode digit and $ a trailing newline.
_PATTERN = re.compile(r"UR[0-9]{2}-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}")


def _round(value: int, key: int) -> int:
    digest = hashlib.blake2b(value.to_bytes(3, "big"), digest_size=4, key=key.to_bytes(2, "big")).digest()
    return int.from_bytes(digest, "big") & _HALF_MASK


def permute(n: int) -> int:
    """A bijection on [0, 2**40)."""
    if not 0 <= n <= MAX_ID:
        raise ValueError(f"authorization id {n} out of range")
    left, right = n >> _HALF_BITS, n & _HALF_MASK
    for key in range(1, _ROUNDS + 1):
        left, right = right, left ^ _round(right, key)
    return (left << _HALF_BITS) | right


def encode(value: int) -> str:
    chars = []
    for _ in range(8):
        chars.append(ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def authorization_number(row_id: int, year: int) -> str:
    body = encode(permute(row_id))
    return f"UR{year % 100:02d}-{body[:4]}-{body[4:]}"


def normalize(text: str) -> str:
    """What a person typed → the canonical form (case, spaces, O/I/L confusions)."""
    cleaned = text.strip().upper().replace(" ", "")
    if len(cleaned) > 4:
        head, tail = cleaned[:4], cleaned[4:]
        tail = tail.replace("O", "0").replace("I", "1").replace("L", "1")
        cleaned = head + tail
    return cleaned


def is_well_formed(number: str) -> bool:
    return bool(_PATTERN.fullmatch(number))
