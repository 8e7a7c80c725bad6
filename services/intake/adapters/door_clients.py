"""Who may obtain the doors' access tokens: the submitting organizations of the platform's credentials
file (UR_CREDENTIALS_FILE, services/common/credentials.py), the one intake authenticates its callers
against. A client id is a principal id; its secret is one of that principal's tokens (checked by the
file's salted digest); only a principal that may submit requests (``requests:submit``) is a client."""

from __future__ import annotations

import hmac

from services.common.credentials import CredentialsSource
from services.intake.service_layer.door_ports import ClientDirectory

SUBMIT = "requests:submit"


class CredentialsDirectory(ClientDirectory):
    def __init__(self, source: CredentialsSource) -> None:
        self.source = source

    def authenticate(self, client_id: str, secret: str) -> bool:
        principal = self.source.current().by_token(secret)
        if principal is None:
            return False
        return hmac.compare_digest(principal.id.encode(), client_id.encode()) and SUBMIT in principal.scopes
