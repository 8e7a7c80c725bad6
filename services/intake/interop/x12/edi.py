"""X12 segments: the tokenizer and the writer.

An interchange announces its own delimiters in the fixed-width ISA segment (106 characters): the
element separator is the 4th character, the repetition separator ISA11, the component separator
ISA16 and the segment terminator the character after it. Line breaks after a terminator are
tolerated (many senders wrap segments). A body the tokenizer cannot read is an interchange-level
rejection, reported in a TA1 with its X12 note code (I18), never an exception.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ISA_LENGTH = 106
MAX_INTERCHANGE = 4 * 1024 * 1024
MAX_SEGMENTS = 20_000
MAX_ELEMENTS = 64
_TAG = re.compile(r"[A-Z][A-Z0-9]{1,2}")


@dataclass(frozen=True)
class Delimiters:
    element: str = "*"
    repetition: str = "^"
    component: str = ":"
    segment: str = "~"


X12_DEFAULT = Delimiters()


@dataclass(frozen=True)
class Segment:
    """One segment; ``elements[0]`` is XX01. ``position`` counts segments from 1 in the interchange."""

    tag: str
    elements: tuple[str, ...]
    position: int = 0

    def get(self, n: int) -> str:
        """Element n (1-based), '' when absent."""
        return self.elements[n - 1] if 0 < n <= len(self.elements) else ""

    def component(self, n: int, k: int, delimiters: Delimiters) -> str:
        parts = self.get(n).split(delimiters.component)
        return parts[k - 1] if 0 < k <= len(parts) else ""


@dataclass(frozen=True)
class InterchangeRejection:
    """Why an interchange cannot be read at all (TA1 note code, X12 element I18)."""

    code: str
    message: str


TA1_NOTES = {
    "001": "the interchange control number in the header and trailer do not match",
    "004": "the segment terminator is invalid",
    "005": "invalid interchange ID qualifier for sender",
    "007": "invalid interchange ID qualifier for receiver",
    "014": "invalid interchange date value",
    "015": "invalid interchange time value",
    "017": "invalid interchange version ID value",
    "018": "invalid interchange control number value",
    "019": "invalid acknowledgment requested value",
    "020": "invalid test indicator value",
    "021": "invalid number of included groups value",
    "022": "invalid control structure",
    "023": "improper (premature) end-of-file (transmission)",
    "024": "invalid interchange content (e.g. invalid GS segment)",
    "026": "invalid data element separator",
    "027": "invalid component element separator",
}


def _reject(code: str, detail: str = "") -> InterchangeRejection:
    return InterchangeRejection(code, TA1_NOTES[code] + (f": {detail}" if detail else ""))


def tokenize(text: str) -> tuple[Delimiters, list[Segment]] | InterchangeRejection:
    """Delimiters from the ISA, then every segment in order."""
    if len(text) > MAX_INTERCHANGE:
        return _reject("024", f"more than {MAX_INTERCHANGE} characters")
    text = text.lstrip("\ufeff \t\r\n")
    delimiters = _delimiters(text)
    if isinstance(delimiters, InterchangeRejection):
        return delimiters
    element, terminator = delimiters.element, delimiters.segment
    segments: list[Segment] = []
    raw_segments = text.split(terminator)
    if raw_segments[-1].strip(" \r\n\t"):
        return _reject("023", "the last segment has no terminator")
    for chunk in raw_segments[:-1]:
        raw = chunk.lstrip("\r\n") if terminator not in "\r\n" else chunk
        if not raw:
            continue
        if len(segments) >= MAX_SEGMENTS:
            return _reject("024", f"more than {MAX_SEGMENTS} segments")
        parts = raw.split(element, MAX_ELEMENTS + 1)
        tag = parts[0]
        if not _TAG.fullmatch(tag):
            return _reject("024", f"segment {len(segments) + 1} has no valid segment ID ({tag[:10]!r})")
        segments.append(Segment(tag, tuple(parts[1:]), len(segments) + 1))
    return delimiters, segments


def _delimiters(text: str) -> Delimiters | InterchangeRejection:
    """The delimiters the (fixed-width) ISA segment declares, or why they are unusable."""
    if not text.startswith("ISA"):
        return _reject("022", "an interchange starts with ISA")
    if len(text) < ISA_LENGTH:
        return _reject("023", "the ISA segment is shorter than 106 characters")
    element = text[3]
    if element.isalnum() or element.isspace():
        return _reject("026", repr(element))
    isa_parts = text[:ISA_LENGTH - 1].split(element)
    if len(isa_parts) != 17:
        return _reject("026", f"the ISA has {len(isa_parts) - 1} elements, not 16")
    component, terminator, repetition = text[104], text[105], isa_parts[11]
    if component.isalnum() or component == element:
        return _reject("027", repr(component))
    if terminator.isalnum() or terminator in (element, component):
        return _reject("004", repr(terminator))
    if len(repetition) != 1 or repetition.isalnum() or repetition in (element, component, terminator):
        return _reject("022", f"invalid repetition separator {repetition!r} (ISA11)")
    return Delimiters(element=element, repetition=repetition, component=component, segment=terminator)


def write(segments: list[Segment] | list[tuple[str, ...]], delimiters: Delimiters = X12_DEFAULT,
          newline: bool = True) -> str:
    """Segments (or tuples of tag and elements) as text; trailing empty elements are dropped (X12
    forbids trailing separators) except in ISA, which is fixed-width."""
    out = []
    for seg in segments:
        tag, elements = (seg.tag, list(seg.elements)) if isinstance(seg, Segment) else (seg[0], list(seg[1:]))
        if tag != "ISA":
            while elements and elements[-1] == "":
                elements.pop()
        out.append(delimiters.element.join([tag, *elements]) + delimiters.segment + ("\n" if newline else ""))
    return "".join(out)


def clean(value: str, delimiters: Delimiters = X12_DEFAULT, limit: int = 264) -> str:
    """Free text made safe for an element: no delimiters, printable, at most ``limit`` characters."""
    banned = {delimiters.element, delimiters.component, delimiters.repetition, delimiters.segment, "\r", "\n"}
    text = "".join(" " if ch in banned or not ch.isprintable() else ch for ch in value)
    return " ".join(text.split())[:limit].strip()
