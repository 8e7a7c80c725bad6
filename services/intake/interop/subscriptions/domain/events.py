"""What the determination events mean to subscriptions (pure).

The PAS topic fires "when a new result is made ready": a determination that decides at least one
line of a request (approved, approved in part, modified, denied, cancelled, no action needed). A
determination that only pends lines (queued for a person, waiting for information) tells the
submitter nothing new and notifies nobody.

A certified line's result includes its authorization number, which the authorization service issues
after the determination (AuthorizationsIssued). A notification for a determination with certified
lines is therefore *held* until intake's records show an authorization of that determination for
each of them (:func:`complete`), and released by the AuthorizationsIssued that follows, or by the
hold timeout when none comes (the result is sent as it stands then).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Decided:
    """A DeterminationMade, as subscriptions see it."""

    event_id: str
    request_id: str
    determination_id: str
    #: Lines the determination decides (not pended); their numbers as in the request.
    decided_lines: tuple[int, ...]
    #: Of those, the certified ones (A1, A2, A6): their answer carries an authorization number.
    certified_lines: tuple[int, ...]
    #: Every line it names (decided or pended).
    named_lines: tuple[int, ...] = ()

    @property
    def notifies(self) -> bool:
        """Whether the determination makes a result available (it decides something)."""
        return bool(self.decided_lines)


@dataclass(frozen=True)
class Authorized:
    """An AuthorizationsIssued: the request's authorization records changed."""

    event_id: str
    request_id: str
    determination_id: str


@dataclass(frozen=True)
class RequestFacts:
    """What intake's records say about a request, for subscriptions."""

    request_id: str
    #: The organization that submitted it (as the door authenticated it); "" when nobody did.
    submitter: str
    #: The requesting provider's NPI (what a subscription's orgIdentifier filter names).
    requesting_npi: str
    line_numbers: frozenset[int]
    #: line number → the determination id of the authorization record intake holds for it.
    authorized: Mapping[int, str]
    #: Whether it came in as a PAS request Bundle (there is a PAS response to send).
    pas: bool


def complete(determination_id: str, certified_lines: Sequence[int], facts: RequestFacts) -> bool:
    """Whether the result of a determination is complete in intake's records: each of its
    certified lines carries an authorization issued for it."""
    return all(facts.authorized.get(line) == determination_id for line in certified_lines)


def consistent(decided: Decided, facts: RequestFacts) -> bool:
    """Whether intake could apply the determination (it names only the request's lines); intake
    dead-letters one that does not, and no result follows from it."""
    return set(decided.named_lines) <= facts.line_numbers
