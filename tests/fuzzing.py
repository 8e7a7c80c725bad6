"""Random inputs for the fuzz test (tests/integration/test_fuzz.py), from a seeded generator so
that a failure can be replayed: protobuf messages filled at random through their descriptors,
valid messages with a few fields mutated, and bytes that may or may not parse.

The values are the ones that have broken services before: Unicode digits (which ``str.isdigit``
and ``\\d`` accept), control characters and a trailing newline, NUL (which PostgreSQL text cannot
hold), very long strings, the edges of int32/int64, NaN and infinities, unknown enum numbers,
dates that do not exist or sit at the end of the calendar, and repeated fields thousands long.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import DecodeError, Message

NASTY_STRINGS: tuple[str, ...] = (
    "", " ", "\n", "\t", "\x00", "a\x00b", "\x07", "\x1b[31m", "\x7f", "\x85", "\u2028", "\u202e", "\ufeff",
    "\u200b", "²", "①", "٣", "३", "\uff13", "\U0001d7ce", "27\U0001d7ce47", "159१333012", "E0601\n", "72148\n",
    "M54.50\n", "1234567893\n", "CA\n", " CA", "ca", "\uff23", "😀", "é", "ﬀ", "ß", "İ", "'; DROP TABLE requests; --",
    "%s%n%x", "\\", "null", "None", "NaN", "-1", "0", "1e309", "${jndi:ldap://x}", "../../etc/passwd",
    "x" * 37, "x" * 41, "x" * 65, "x" * 101, "x" * 201, "x" * 257, "y" * 2001, "z" * 10_001,
    "M54.16", "m54.16", "M5416", "S83.511A", "72148", "E0601", "0042T", "J3490", "1234567893", "1245319599",
    "CA", "TX", "NY", "H0001-001", "T-MA-0001", "T-MA-0002", "nurse", "physician", "general", "advanced_imaging",
    "symptom_duration_weeks", "conservative_therapy_weeks", "age_years", "visits_completed", "weeks", "visits",
    "enrollee_request", "beyond_plan_control", "UR26-8K3F-Q9ZD", "ur26 8k3f q9zd", "UR\uff12\uff16-8K3F-Q9ZD",
    "00000000-0000-0000-0000-000000000000", "3F2B8F9E-1C4D-4E5F-8A6B-7C8D9E0F1A2B",
)
INT32 = (0, 1, -1, 2, 3, 7, 12, 50, 51, 99, 100, 200, 500, 501, 1000, 1001, 9999, 10_000, 2027, 2199, 9999,
         2**31 - 1, -(2**31), 2**30, -(2**30))
INT64 = (*INT32, 2**63 - 1, -(2**63), 253402300799, 253402300800, -62135596800, -62135596801, 1_800_000_000)
DOUBLES = (0.0, -0.0, 1.0, -1.0, 7.0, 8.5, -7.0, 1e9, 1e9 + 1, -1e9 - 1, 1e308, -1e308, 5e-324, math.inf,
           -math.inf, math.nan, 150.0, 151.0, 168.0, 169.0, 10_000.0, 10_001.0)
UNKNOWN_ENUMS = (99, -1, 2**31 - 1, 12345)
# A date part: real ones, and ones that are not (month 13, day 0, year 0, 9999, negative).
DATE_PARTS = (0, 1, 2, 12, 13, 28, 29, 30, 31, 32, -1, 1899, 1900, 2026, 2027, 2028, 2199, 2200, 9999, 10_000)

MAX_DEPTH = 4


def fields_of(message: Message) -> list[FieldDescriptor]:
    """The message's field descriptors (typed: the upb ones are FieldDescriptor instances too)."""
    return [f for f in message.DESCRIPTOR.fields if isinstance(f, FieldDescriptor)]


class MessageFuzzer:
    """Random values for protobuf fields, drawn from ``rng`` (seeded by the caller).

    ``strings`` adds values that mean something to the service under test (ids it knows), so that
    some calls get past the lookups and reach deeper code."""

    def __init__(self, rng: random.Random, strings: Sequence[str] = ()) -> None:
        self.rng = rng
        self.strings: list[str] = [*NASTY_STRINGS, *strings]
        self._short = False  # strings of at most 100 characters (while filling an item to be copied)

    # -- scalars ------------------------------------------------------------------------------------
    def string(self) -> str:
        value = self._string()
        return value[:100] if self._short else value

    def _string(self) -> str:
        r = self.rng.random()
        if r < 0.6:
            return self.rng.choice(self.strings)
        if r < 0.75:  # a known value with something nasty glued on
            return self.rng.choice(self.strings) + self.rng.choice(("\n", "\x00", " ", "²", "\u202e", "x" * 50))
        if r < 0.97:  # random code points (no surrogates: protobuf strings are UTF-8)
            return "".join(self._code_point() for _ in range(self.rng.randint(1, 40)))
        return self.rng.choice(("\x00", "a", "é", "9")) * self.rng.choice((1000, 65_537, 400_000))

    def _code_point(self) -> str:
        r = self.rng.random()
        if r < 0.5:
            return chr(self.rng.randint(0, 0x7F))
        if r < 0.8:
            return chr(self.rng.randint(0x80, 0xD7FF))
        return chr(self.rng.randint(0xE000, 0x10FFFF))

    def data(self) -> bytes:
        return self.rng.randbytes(self.rng.choice((0, 1, 8, 100, 5000)))

    def _int(self, field: FieldDescriptor) -> int:
        wide = field.cpp_type in (FieldDescriptor.CPPTYPE_INT64, FieldDescriptor.CPPTYPE_UINT64)
        value = self.rng.choice(INT64 if wide else INT32) if self.rng.random() < 0.8 else self.rng.randint(-100, 400)
        if field.name in ("year", "month", "day"):
            value = self.rng.choice(DATE_PARTS)
        if field.cpp_type == FieldDescriptor.CPPTYPE_UINT64:
            return abs(value) % 2**64
        if field.cpp_type == FieldDescriptor.CPPTYPE_UINT32:
            return abs(value) % 2**32
        return value

    def _enum(self, field: FieldDescriptor) -> int:
        if field.enum_type is not None and self.rng.random() < 0.8:
            return int(self.rng.choice(field.enum_type.values).number)
        return self.rng.choice(UNKNOWN_ENUMS)

    def scalar(self, field: FieldDescriptor) -> object:
        kind = field.cpp_type
        if kind == FieldDescriptor.CPPTYPE_STRING:
            return self.data() if field.type == FieldDescriptor.TYPE_BYTES else self.string()
        if kind == FieldDescriptor.CPPTYPE_BOOL:
            return self.rng.random() < 0.5
        if kind in (FieldDescriptor.CPPTYPE_DOUBLE, FieldDescriptor.CPPTYPE_FLOAT):
            return self.rng.choice(DOUBLES) if self.rng.random() < 0.8 else self.rng.uniform(-1000, 1000)
        if kind == FieldDescriptor.CPPTYPE_ENUM:
            return self._enum(field)
        return self._int(field)

    # -- messages -----------------------------------------------------------------------------------
    def fill(self, message: Message, depth: int = 0, density: float = 0.7, big: bool = True) -> Message:
        """Set a random subset of ``message``'s fields (in place) and return it."""
        for field in fields_of(message):
            if self.rng.random() < density:
                self.set_field(message, field, depth, big)
        return message

    def _count(self, big: bool) -> int:
        r = self.rng.random()
        if r < 0.9:
            return self.rng.randint(0, 3)
        if r < 0.97 or not big:
            return self.rng.randint(4, 60)
        return self.rng.choice((201, 1000, 10_000))

    def set_field(self, message: Message, field: FieldDescriptor, depth: int, big: bool = True) -> None:
        """Set one field at random; ``big``: a repeated field may get thousands of items (not inside
        an item of another such field, which would make millions)."""
        name = field.name
        if field.is_repeated:
            container = getattr(message, name)
            count = self._count(big)
            if field.cpp_type == FieldDescriptor.CPPTYPE_MESSAGE:
                if depth >= MAX_DEPTH or not count:
                    return
                self._short = count > 60  # its strings are copied thousands of times
                first = self.fill(container.add(), depth + 1, big=big and count <= 3)
                self._short = False
                for _ in range(count - 1):
                    if count > 60:  # thousands of copies: cheap to make, costly to check
                        container.add().CopyFrom(first)
                    else:
                        self.fill(container.add(), depth + 1, big=big and count <= 3)
            else:
                one = self.scalar(field)
                # Thousands of one value: the huge strings among them would make gigabytes.
                if count > 60 and isinstance(one, str | bytes) and len(one) > 100:
                    one = one[:100]
                container.extend([one if count > 60 else self.scalar(field) for _ in range(count)])
            return
        if field.cpp_type == FieldDescriptor.CPPTYPE_MESSAGE:
            if depth >= MAX_DEPTH:
                return
            child = getattr(message, name)
            child.SetInParent()
            self.fill(child, depth + 1, big=big)
            return
        setattr(message, name, self.scalar(field))

    def mutate(self, seed: Message, changes: int | None = None) -> Message:
        """A copy of ``seed`` with one to three fields, anywhere in it, set at random (or cleared)."""
        message = type(seed)()
        message.CopyFrom(seed)
        for _ in range(changes or self.rng.randint(1, 3)):
            target, field = self._pick(message)
            if field is None:
                continue
            if self.rng.random() < 0.15:
                target.ClearField(field.name)
            else:
                if field.is_repeated and self.rng.random() < 0.5:
                    target.ClearField(field.name)
                # One huge field per message: thousands of items in a message already that big make gigabytes.
                self.set_field(target, field, depth=MAX_DEPTH - 2, big=message.ByteSize() < 50_000)
        return message

    def _pick(self, message: Message) -> tuple[Message, FieldDescriptor | None]:
        """A random field of ``message`` or of a message inside it."""
        target = message
        for _ in range(MAX_DEPTH):
            fields = fields_of(target)
            if not fields:
                return target, None
            field = self.rng.choice(fields)
            if field.cpp_type != FieldDescriptor.CPPTYPE_MESSAGE or self.rng.random() < 0.4:
                return target, field
            if field.is_repeated:
                items = getattr(target, field.name)
                if not items:
                    return target, field
                target = self.rng.choice(list(items))
            else:
                target = getattr(target, field.name)
        return target, None

    # -- bytes --------------------------------------------------------------------------------------
    def junk(self, seeds: Sequence[Message]) -> bytes:
        """Bytes for a request body: random ones, or a valid message flipped, cut short or spliced."""
        r = self.rng.random()
        if r < 0.4 or not seeds:
            return self.rng.randbytes(self.rng.choice((1, 2, 5, 20, 100, 1000)))
        body = bytearray(self.rng.choice(list(seeds)).SerializeToString())
        if r < 0.6 and body:
            for _ in range(self.rng.randint(1, 4)):
                body[self.rng.randrange(len(body))] = self.rng.randrange(256)
        elif r < 0.8 and body:
            del body[self.rng.randrange(len(body)):]
        else:
            # A string field whose bytes are not UTF-8 (tag 1, length-delimited) in front.
            body[:0] = bytes([0x0A, 2, 0xC3, 0x28])
        return bytes(body)


def parses(message_type: type[Message], body: bytes) -> bool:
    """Whether ``body`` is a valid serialized ``message_type`` (what the server will make of it)."""
    try:
        message_type.FromString(body)
    except DecodeError:
        return False
    return True
