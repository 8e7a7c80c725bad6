"""Intake's records of requests, for subscriptions (the ``Results`` port), read on the unit of
work's connection: which events intake has applied (its ``processed_events``), the requests
themselves (intake's repository), and the PAS request Bundles the FHIR door stored with them
(``PasSubmissions``: the door's storage, given by the composition root)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select
from ur.common.v1 import types_pb2
from ur.intake.v1 import intake_pb2

from services.intake.adapters import tables as t
from services.intake.adapters.repository import SqlRequestRepository
from services.intake.domain.records import RequestRecord
from services.intake.entrypoints.mapping import to_view
from services.intake.interop.pas.response import pas_response_bundle
from services.intake.interop.subscriptions.domain.events import RequestFacts
from services.intake.interop.subscriptions.service_layer import ports
from services.intake.interop.subscriptions.service_layer.handlers import INTAKE_CONSUMER


@dataclass(frozen=True)
class PasSubmission:
    """A request that came in through ``Claim/$submit``: who submitted it (the organization the
    door authenticated) and the PAS request Bundle as received."""

    submitter: str
    bundle: bytes


PasSubmissions = Callable[[Connection, Sequence[str]], dict[str, PasSubmission]]
"""Request id → its PAS submission, for those of the ids that came in as PAS Bundles, read on the
connection given (so in the caller's transaction)."""


def no_submissions(_conn: Connection, _request_ids: Sequence[str]) -> dict[str, PasSubmission]:
    """No request came in as a PAS Bundle (a deployment without the FHIR door)."""
    return {}


def _authorized(record: RequestRecord) -> dict[int, str]:
    out = {}
    for line in record.lines:
        if line.authorization:
            auth = types_pb2.Authorization.FromString(line.authorization)
            if auth.authorization_number:
                out[line.line_number] = auth.determination_id
    return out


class SqlResults(ports.Results):
    def __init__(self, conn: Connection, submissions: PasSubmissions) -> None:
        self.conn = conn
        self._submissions = submissions

    def applied(self, event_ids: Sequence[str]) -> set[str]:
        if not event_ids:
            return set()
        p = t.processed_events
        rows = self.conn.execute(select(p.c.event_id).where(p.c.consumer == INTAKE_CONSUMER,
                                                            p.c.event_id.in_(list(event_ids))))
        return {r.event_id for r in rows}

    def requests(self, request_ids: Sequence[str]) -> dict[str, RequestFacts]:
        records = SqlRequestRepository(self.conn).get_many(request_ids) if request_ids else {}
        submissions = self._submissions(self.conn, sorted(records)) if records else {}
        out = {}
        for request_id, record in records.items():
            submitted = intake_pb2.SubmitRequestRequest.FromString(record.payload)
            pas = submissions.get(request_id)
            out[request_id] = RequestFacts(
                request_id=request_id, submitter=_submitter(record, pas),
                requesting_npi=submitted.requesting_provider.npi, line_numbers=frozenset(
                    ln.line_number for ln in record.lines), authorized=_authorized(record), pas=pas is not None)
        return out

    def response_bundle(self, request_id: str) -> dict[str, Any] | None:
        record = SqlRequestRepository(self.conn).get(request_id)
        pas = self._submissions(self.conn, [request_id]).get(request_id)
        if record is None or pas is None:
            return None
        return pas_response_bundle(pas.bundle, to_view(record))


def _submitter(record: RequestRecord, pas: PasSubmission | None) -> str:
    """Who submitted the request: intake's record of it (the authenticated principal; the door calls
    intake as the organization), else, for a request from before callers were authenticated, the door's."""
    return record.submitter or (pas.submitter if pas is not None else "")
