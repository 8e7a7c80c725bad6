"""Who may call authorization (services/common/access.py): services with their own identities. A
claims system checks one authorization by its number (``authorizations:check``); review (its
duplicate check) and the workbench read them, a member's included (``authorizations:read``)."""

from __future__ import annotations

from ur.authorization.v1 import authorization_pb2

from services.common.access import AccessPolicy, rule

READ = "authorizations:read"
CHECK = "authorizations:check"

POLICY = AccessPolicy(authorization_pb2.DESCRIPTOR.services_by_name["AuthorizationService"], {
    "GetAuthorization": rule(READ, CHECK),
    "ListMemberAuthorizations": rule(READ),
})
