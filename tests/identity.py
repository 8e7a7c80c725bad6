"""Who the tests are to the services: the development credentials of deploy/sample/credentials.dev.yaml
(every service of the tests reads that file), and the metadata that presents each principal."""

from __future__ import annotations

import functools

import yaml

from services.cli.platform import DEV_CREDENTIALS

CREDENTIALS = DEV_CREDENTIALS

#: Submitters (intake).
CLINIC = "sample-clinic"
CLEARINGHOUSE = "sample-clearinghouse"
#: Services.
REVIEW_SERVICE = "svc-review"
WORKBENCH = "svc-workbench"
CLAIMS = "svc-claims"
OPERATOR = "ops-console"
#: Reviewers (review), by role.
NURSE = "rn-alvarez"
PHYSICIAN = "md-patel"
SUPERVISOR = "sup-kim"

Metadata = tuple[tuple[str, str], ...]


def token(principal: str) -> str:
    """The development token of a principal of the sample file."""
    return f"dev-only-token-{principal}"


def as_(principal: str) -> Metadata:
    """Call metadata presenting ``principal``."""
    return (("authorization", f"Bearer {token(principal)}"),)


@functools.cache
def scopes_of() -> dict[str, frozenset[str]]:
    """Every principal of the sample file, with its scopes."""
    document = yaml.safe_load(CREDENTIALS.read_text(encoding="utf-8"))
    return {p["id"]: frozenset(p.get("scopes") or ()) for p in document["principals"]}
