"""Who may call review (services/common/access.py). Reviewers (``review:work``, the principal's id
being their reviewer id) do everything the reviewer workflow offers, and what their role allows is
then the directory's to say (PERMISSION_DENIED from the use case); a service with ``review:read``
reads determinations, the open queue, notices and appeals, nothing else. No review call is open to
anonymous callers."""

from __future__ import annotations

from ur.review.v1 import review_pb2

from services.common.access import AccessPolicy, rule

WORK = "review:work"
READ = "review:read"

#: Every method, by name: a new one without a line here stops review from starting.
POLICY = AccessPolicy(review_pb2.DESCRIPTOR.services_by_name["ReviewService"], {
    "GetDetermination": rule(WORK, READ),
    "ListReviewQueue": rule(WORK, READ),
    "WhoAmI": rule(WORK),
    "PutReviewer": rule(WORK),  # supervisors only: the directory checks the role
    "ListReviewers": rule(WORK),
    "ListMyTasks": rule(WORK),
    "ClaimNextTask": rule(WORK),
    "ReleaseTask": rule(WORK),
    "ReassignTask": rule(WORK),
    "DecideTask": rule(WORK),
    "RecordPeerToPeer": rule(WORK),
    "GetTask": rule(WORK),
    "ExtendDeadline": rule(WORK),
    "GetQueueOverview": rule(WORK),
    "ListMemberTasks": rule(WORK),
    "AddCaseNote": rule(WORK),
    "ListCaseNotes": rule(WORK),
    "SetTaskUrgency": rule(WORK),  # the directory checks the role
    "GetNotice": rule(WORK, READ),
    "ListNotices": rule(WORK, READ),
    "GetAppeal": rule(WORK, READ),
})
