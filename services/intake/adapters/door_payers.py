"""The payers the doors serve (UR_FHIR_PAYERS_FILE), validated before the door starts:

    payers:
      - identifier: "1234567893"          # a PAS insurer Organization identifier value, or the
                                          # 278's 2010A NM109 payer id
        line_of_business: medicare_advantage
        plan_id: "MCI-MA"                 # optional
        state: "MD"                       # optional: the member's state when the request names none

An unknown line of business, an identifier listed twice, unknown or duplicate keys are refused with a
:class:`PayersError` (``payers.yaml: payers[1].line_of_business: ...``).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import field_validator
from ur.common.v1 import types_pb2

from services.common.config_files import ConfigFileError, FileModel, Text, load_model
from services.common.proto_enums import to_number
from services.intake.domain.codes import is_state
from services.intake.domain.model import LINES_OF_BUSINESS
from services.intake.interop.payers import PayerProfile


class PayersError(ConfigFileError):
    """A payers file problem: the message names the file, the entry and the field."""


class PayerEntry(FileModel):
    identifier: Text
    line_of_business: str
    plan_id: str = ""
    state: str = ""

    @field_validator("line_of_business")
    @classmethod
    def _known_line(cls, value: str) -> str:
        if value not in LINES_OF_BUSINESS:
            raise ValueError(f"{value!r} is not one of {', '.join(LINES_OF_BUSINESS)}")
        return value

    @field_validator("state")
    @classmethod
    def _state(cls, value: str) -> str:
        if value and not is_state(value):
            raise ValueError(f"{value!r} is not a two-letter USPS state code")
        return value


class PayersFile(FileModel):
    payers: list[PayerEntry]


def read_payers(path: Path) -> dict[str, PayerProfile]:
    """Payer identifier -> what the doors assume for it; raises :class:`PayersError`."""
    doc = load_model(PayersFile, path, PayersError)
    out: dict[str, PayerProfile] = {}
    for i, entry in enumerate(doc.payers):
        if entry.identifier in out:
            raise PayersError(path, f"payers[{i}].identifier", f"{entry.identifier!r} is listed twice")
        out[entry.identifier] = PayerProfile(to_number(types_pb2.LineOfBusiness, entry.line_of_business),
                                             plan_id=entry.plan_id, state=entry.state)
    return out
