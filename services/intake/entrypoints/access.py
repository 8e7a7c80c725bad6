"""Who may call intake (services/common/access.py): submitting organizations (provider systems,
clearinghouses, prior-authorization queues) submit requests, read back their own, and send more
information for, cancel, revise and appeal only their own; a principal with ``requests:read-all``
(the workbench) reads every submitter's and changes none. Every call counts against the caller's
rate limit (UR_INTAKE_RATE_PER_S, UR_INTAKE_RATE_BURST)."""

from __future__ import annotations

from ur.intake.v1 import intake_pb2

from services.common.access import AccessPolicy, Caller, rule

SUBMIT = "requests:submit"
READ = "requests:read"
READ_ALL = "requests:read-all"

POLICY = AccessPolicy(intake_pb2.DESCRIPTOR.services_by_name["IntakeService"], {
    "SubmitRequest": rule(SUBMIT, limited=True),
    # Only for the caller's own requests: the use cases answer NOT_FOUND for another's.
    "SubmitAdditionalInformation": rule(SUBMIT, limited=True),
    "CancelRequest": rule(SUBMIT, limited=True),
    "ReviseRequest": rule(SUBMIT, limited=True),
    "FileAppeal": rule(SUBMIT, limited=True),
    "GetRequest": rule(READ, READ_ALL, limited=True),
    "ListMemberRequests": rule(READ, READ_ALL, limited=True),
    # A submitter sees only the claim's requests it submitted; the workbench every one.
    "ListClaimRequests": rule(READ, READ_ALL, limited=True),
})


def readable_submitter(caller: Caller) -> str | None:
    """Whose requests ``caller`` may read: its own (its principal), or everyone's (None)."""
    return None if caller.has(READ_ALL) else caller.principal
