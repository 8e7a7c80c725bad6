"""Access control (services/common/access.py) without a server: the policies cover their services'
methods exactly, callers are authenticated by token or certificate, authorized by scope, and paced
by a token bucket on an injected clock."""

from __future__ import annotations

from pathlib import Path

import pytest
from google.protobuf.descriptor import ServiceDescriptor
from ur.authorization.v1 import authorization_pb2
from ur.intake.v1 import intake_pb2
from ur.review.v1 import review_pb2

from services.authorization.entrypoints.access import POLICY as AUTHORIZATION_POLICY
from services.common.access import AccessControl, AccessPolicy, RateLimiter, current_caller, rule
from services.common.credentials import SCOPES, CredentialsSource, token_digest
from services.common.errors import ConfigurationError, PermissionDenied, ResourceExhausted, Unauthenticated
from services.intake.entrypoints.access import POLICY as INTAKE_POLICY
from services.review.entrypoints.access import POLICY as REVIEW_POLICY

SALT = "the-salt-of-the-access-tests"
INTAKE: ServiceDescriptor = intake_pb2.DESCRIPTOR.services_by_name["IntakeService"]
SUBMIT = "/ur.intake.v1.IntakeService/SubmitRequest"
GET = "/ur.intake.v1.IntakeService/GetRequest"
TOKENS = {"submitter": "token-of-the-submitter", "reader": "token-of-the-reader", "nobody": "token-of-nobody"}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def source(tmp_path: Path) -> CredentialsSource:
    path = tmp_path / "credentials.yaml"
    path.write_text(
        f"salt: {SALT}\nprincipals:\n"
        f"  - {{id: submitter, scopes: [requests:submit, requests:read], tokens: "
        f"[{{hmac_sha256: {token_digest(SALT, TOKENS['submitter'])}}}], certificates: [{{common_name: acme}}]}}\n"
        f"  - {{id: reader, scopes: [requests:read-all], "
        f"tokens: [{{hmac_sha256: {token_digest(SALT, TOKENS['reader'])}}}], "
        f"certificates: [{{dns: reader.example}}]}}\n"
        f"  - {{id: nobody, tokens: [{{hmac_sha256: {token_digest(SALT, TOKENS['nobody'])}}}]}}\n")
    return CredentialsSource(path)


def bearer(token: str) -> list[tuple[str, str | bytes]]:
    return [("authorization", f"Bearer {token}")]


@pytest.mark.parametrize("policy", [INTAKE_POLICY, REVIEW_POLICY, AUTHORIZATION_POLICY])
def test_every_policy_has_a_rule_of_known_scopes_for_every_method(policy: AccessPolicy) -> None:
    descriptors = {d.full_name: d for d in (INTAKE, review_pb2.DESCRIPTOR.services_by_name["ReviewService"],
                                            authorization_pb2.DESCRIPTOR.services_by_name["AuthorizationService"])}
    service = descriptors[policy.service]
    assert sorted(policy.rules) == sorted(m.name for m in service.methods)
    for each in policy.rules.values():
        assert each.scopes
        assert each.scopes <= set(SCOPES)


def test_a_policy_missing_a_method_or_naming_another_stops_the_service() -> None:
    rules = {m.name: rule("requests:read") for m in INTAKE.methods}
    del rules["GetRequest"]
    with pytest.raises(ConfigurationError, match="no rule for GetRequest"):
        AccessPolicy(INTAKE, rules)
    with pytest.raises(ConfigurationError, match="a rule for Delete, which it does not have"):
        AccessPolicy(INTAKE, {**{m.name: rule("requests:read") for m in INTAKE.methods},
                              "Delete": rule("requests:read")})
    with pytest.raises(ConfigurationError, match="needs known scopes"):
        AccessPolicy(INTAKE, {m.name: rule("requests:everything") for m in INTAKE.methods})
    with pytest.raises(ConfigurationError, match="needs known scopes"):
        AccessPolicy(INTAKE, {m.name: rule() for m in INTAKE.methods})


def test_the_policies_say_who_may_do_what() -> None:
    assert INTAKE_POLICY.rule_of(SUBMIT) == rule("requests:submit", limited=True)
    assert INTAKE_POLICY.rule_of(GET) == rule("requests:read", "requests:read-all", limited=True)
    assert INTAKE_POLICY.rule_of("/ur.review.v1.ReviewService/GetTask") is None
    assert AUTHORIZATION_POLICY.rules["GetAuthorization"].scopes == {"authorizations:read", "authorizations:check"}
    assert AUTHORIZATION_POLICY.rules["ListMemberAuthorizations"].scopes == {"authorizations:read"}
    assert AUTHORIZATION_POLICY.rules["FindOverlappingAuthorizations"].scopes == {"authorizations:read"}
    assert REVIEW_POLICY.rules["ListReviewQueue"].scopes == {"review:work", "review:read"}
    # What a service may read besides reviewers: determinations, the queue, notices and appeals.
    readable = ("ListReviewQueue", "GetDetermination", "GetNotice", "ListNotices", "GetAppeal")
    assert all(REVIEW_POLICY.rules[name].scopes == {"review:work", "review:read"} for name in readable)
    assert all(r.scopes == {"review:work"} for name, r in REVIEW_POLICY.rules.items() if name not in readable)
    # A submitter changes only its own requests (the use cases' check); a reader changes none.
    for change in ("SubmitAdditionalInformation", "CancelRequest", "ReviseRequest", "FileAppeal"):
        assert INTAKE_POLICY.rules[change] == rule("requests:submit", limited=True)
    # Only a claims system draws units; claim matching needs the claims scope too.
    assert AUTHORIZATION_POLICY.rules["ConsumeUnits"].scopes == {"authorizations:consume"}
    assert AUTHORIZATION_POLICY.rules["CheckClaim"].scopes == {"authorizations:check"}
    assert AUTHORIZATION_POLICY.rules["GetAuthorizationMetrics"].scopes == {"authorizations:read"}


@pytest.mark.parametrize(("metadata", "context", "message"), [
    ([], {}, "missing credentials"),
    ([("authorization", "Basic dXNlcjpwdw==")], {}, "malformed credentials"),
    ([("authorization", "Bearer ")], {}, "malformed credentials"),
    ([("authorization", "Bearer token-of-the-submitter"), ("authorization", "Bearer token-of-the-reader")], {},
     "more than one 'authorization' header"),
    (bearer("a-token-nobody-was-given"), {}, "unknown or revoked token"),
    # An unknown token is refused even with a certificate the server knows: no falling back.
    (bearer("a-token-nobody-was-given"), {"x509_common_name": [b"acme"]}, "unknown or revoked token"),
    ([], {"x509_common_name": [b"stranger"]}, "names no principal of the credentials file"),
    ([], {"x509_common_name": [b"acme"], "peer_dns": [b"reader.example"]}, "names several principals"),
])
def test_callers_without_usable_credentials_are_unauthenticated(
        source: CredentialsSource, metadata: list[tuple[str, str | bytes]], context: dict[str, list[bytes]],
        message: str) -> None:
    control = AccessControl([INTAKE_POLICY], source)
    with pytest.raises(Unauthenticated, match=message) as caught:
        control.admit(GET, INTAKE_POLICY.rule_of(GET), metadata, context)
    assert "token-of" not in str(caught.value)


def test_a_token_or_a_certificate_names_the_caller_and_a_token_comes_first(source: CredentialsSource) -> None:
    control = AccessControl([INTAKE_POLICY], source)
    by_token = control.admit(GET, INTAKE_POLICY.rule_of(GET), bearer(TOKENS["submitter"]), {})
    assert (by_token.principal, by_token.via) == ("submitter", "token")
    assert by_token.scopes == {"requests:submit", "requests:read"}
    by_certificate = control.admit(GET, INTAKE_POLICY.rule_of(GET), [], {"peer_dns": [b"reader.example"]})
    assert (by_certificate.principal, by_certificate.via) == ("reader", "certificate")
    both = control.admit(GET, INTAKE_POLICY.rule_of(GET), bearer(TOKENS["reader"]), {"x509_common_name": [b"acme"]})
    assert both.principal == "reader"


def test_an_authenticated_caller_without_the_scope_is_denied_every_time(source: CredentialsSource) -> None:
    control = AccessControl([INTAKE_POLICY], source, RateLimiter(1, 1, Clock()))
    for _ in range(5):  # never RESOURCE_EXHAUSTED instead: the scope is checked first
        with pytest.raises(PermissionDenied, match="nobody may not call GetRequest: it needs the scope "
                                                   "requests:read or requests:read-all"):
            control.admit(GET, INTAKE_POLICY.rule_of(GET), bearer(TOKENS["nobody"]), {})
        with pytest.raises(PermissionDenied, match="reader may not call SubmitRequest"):
            control.admit(SUBMIT, INTAKE_POLICY.rule_of(SUBMIT), bearer(TOKENS["reader"]), {})


def test_each_caller_has_its_own_token_bucket() -> None:
    clock = Clock()
    limiter = RateLimiter(rate_per_s=2.0, burst=3, monotonic=clock)
    assert [limiter.take("a") for _ in range(3)] == [None, None, None]
    assert limiter.take("a") == pytest.approx(0.5)  # one call's worth at 2 a second
    assert limiter.take("b") is None  # b has its own budget
    clock.now += 0.25
    assert limiter.take("a") == pytest.approx(0.25)
    clock.now += 0.25
    assert limiter.take("a") is None
    clock.now += 100  # a long pause refills only up to the burst
    assert [limiter.take("a") for _ in range(4)][-1] is not None
    with pytest.raises(ValueError, match="positive rate"):
        RateLimiter(0, 1)


def test_a_caller_over_its_rate_is_told_when_to_retry(source: CredentialsSource) -> None:
    clock = Clock()
    control = AccessControl([INTAKE_POLICY], source, RateLimiter(10.0, 2, clock))
    for _ in range(2):
        control.admit(SUBMIT, INTAKE_POLICY.rule_of(SUBMIT), bearer(TOKENS["submitter"]), {})
    with pytest.raises(ResourceExhausted, match=r"rate limit: submitter may make 10 calls a second \(bursts of 2\)") \
            as caught:
        control.admit(SUBMIT, INTAKE_POLICY.rule_of(SUBMIT), bearer(TOKENS["submitter"]), {})
    assert caught.value.retry_after_s == pytest.approx(0.1)
    # Another caller is not held back by the first one's calls.
    control.admit(GET, INTAKE_POLICY.rule_of(GET), bearer(TOKENS["reader"]), {})
    clock.now += 0.1
    control.admit(SUBMIT, INTAKE_POLICY.rule_of(SUBMIT), bearer(TOKENS["submitter"]), {})


def test_outside_an_admitted_call_there_is_no_caller() -> None:
    with pytest.raises(Unauthenticated, match="does not authenticate its callers"):
        current_caller()
