"""Shapes of the codes a request carries (pure functions).

CPT: 5 characters, 5 digits or 4 digits + F/T/U (category II/III, PLA).
HCPCS Level II: a letter + 4 digits. ICD-10-CM: letter, digit, alphanumeric,
then optionally a dot and 1-4 alphanumerics. NPI: 10 digits whose last digit is
the Luhn check digit computed over the constant prefix 80840 + the first nine.
(Sources: AMA CPT; CMS HCPCS; CDC/NCHS ICD-10-CM; CMS NPI check digit standard.)

Every code is ASCII, matched whole (``fullmatch``): Python's ``\\d`` and ``str.isdigit()`` also
accept Arabic-Indic, Devanagari, full-width and superscript digits, and ``$`` accepts a trailing
newline, so neither is used here.
"""

from __future__ import annotations

import re

_CPT = re.compile(r"[0-9]{4}[0-9FTU]")
_HCPCS = re.compile(r"[A-Z][0-9]{4}")
_ICD10CM = re.compile(r"[A-TV-Z][0-9][0-9A-Z](\.?[0-9A-Z]{1,4})?")
_NPI = re.compile(r"[0-9]{10}")
_STATE = frozenset({
    "AL", "AK", "AZ", "AR", "CA", "CO", "CT", "DE", "DC", "FL", "GA", "HI", "ID", "IL",
    "IN", "IA", "KS", "KY", "LA", "ME", "MD", "MA", "MI", "MN", "MS", "MO", "MT", "NE",
    "NV", "NH", "NJ", "NM", "NY", "NC", "ND", "OH", "OK", "OR", "PA", "RI", "SC", "SD",
    "TN", "TX", "UT", "VT", "VA", "WA", "WV", "WI", "WY", "PR", "GU", "VI", "AS", "MP",
})


def is_procedure_code(code: str) -> bool:
    return bool(_CPT.fullmatch(code) or _HCPCS.fullmatch(code))


def is_icd10cm(code: str) -> bool:
    # ASCII before upper(): 'ß'.upper() is 'SS' and 'ﬀ'.upper() is 'FF'.
    return code.isascii() and bool(_ICD10CM.fullmatch(code.upper()))


def normalize_icd10(code: str) -> str:
    """Uppercase without the dot: 'm54.50' -> 'M5450'."""
    return code.upper().replace(".", "")


def is_state(code: str) -> bool:
    return code in _STATE


def luhn_check_digit(payload: str) -> int:
    """The Luhn check digit of ``payload``, a string of ASCII digits (ValueError otherwise)."""
    if not payload.isascii() or not payload.isdigit():
        raise ValueError(f"{payload!r} is not a string of ASCII digits")
    total = 0
    for i, ch in enumerate(reversed(payload)):
        d = int(ch)
        if i % 2 == 0:  # rightmost payload digit is doubled (check digit will follow it)
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return (10 - total % 10) % 10


def is_npi(npi: str) -> bool:
    if not _NPI.fullmatch(npi):
        return False
    return luhn_check_digit("80840" + npi[:9]) == int(npi[9])
