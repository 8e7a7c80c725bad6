"""Who may call authorization (services/common/access.py): services with their own identities. A
claims system checks one authorization by its number and matches claim lines against authorizations
(``authorizations:check``), and draws a paid line's units (``authorizations:consume``); review (its
duplicate check), the workbench and operators read them, a member's included, and the metrics
(``authorizations:read``)."""

from __future__ import annotations

from ur.authorization.v1 import authorization_pb2

from services.common.access import AccessPolicy, rule

READ = "authorizations:read"
CHECK = "authorizations:check"
CONSUME = "authorizations:consume"

POLICY = AccessPolicy(authorization_pb2.DESCRIPTOR.services_by_name["AuthorizationService"], {
    "GetAuthorization": rule(READ, CHECK),
    "ListMemberAuthorizations": rule(READ),
    "FindOverlappingAuthorizations": rule(READ),
    "CheckClaim": rule(CHECK),
    # Changes the authorization (its units): only a claims system, never a reader.
    "ConsumeUnits": rule(CONSUME),
    "GetAuthorizationMetrics": rule(READ),
})
