"""The credentials file (services/common/credentials.py): one format for every service, secrets kept
as keyed digests, precise refusals that never echo a token, reloading without a restart, and the
client side's token file and bearer interceptor."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest

from services.common.credentials import (
    SCOPES,
    BearerToken,
    CredentialsFileError,
    CredentialsSource,
    TokenFile,
    load_credentials,
    token_digest,
)
from services.common.errors import ConfigurationError
from tests.conftest import REPO

SAMPLE = REPO / "deploy" / "sample"
SALT = "a-salt-of-this-test-file"
SECRET = "a-long-enough-secret-of-the-test"


def write(tmp_path: Path, text: str, name: str = "file.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def production(tmp_path: Path, *principals: tuple[str, list[str], list[str]], name: str = "file.yaml") -> Path:
    """A production file: (id, scopes, tokens) each, the tokens listed as digests."""
    lines = [f"salt: {SALT}", "principals:"]
    for principal, scopes, tokens in principals:
        lines.append(f"  - id: {principal}")
        lines.append(f"    scopes: [{', '.join(scopes)}]")
        lines.append("    tokens:")
        lines.extend(f"      - hmac_sha256: {token_digest(SALT, t)}" for t in tokens)
    return write(tmp_path, "\n".join(lines) + "\n", name)


def test_the_sample_file_names_every_component_and_holds_only_development_tokens() -> None:
    credentials = load_credentials(SAMPLE / "credentials.dev.yaml")
    assert credentials.development
    ids = {p.id for p in credentials.principals()}
    assert {"sample-clinic", "sample-clearinghouse", "svc-review", "svc-workbench", "ops-console",
            "rn-alvarez", "md-patel", "sup-kim"} <= ids
    reviewer = credentials.by_token("dev-only-token-rn-alvarez")
    assert reviewer is not None
    assert reviewer.id == "rn-alvarez"
    assert reviewer.scopes == {"review:work"}
    for component, path in (("svc-review", SAMPLE / "tokens" / "svc-review.dev-token"),
                            ("svc-workbench", SAMPLE / "tokens" / "svc-workbench.dev-token")):
        found = credentials.by_token(TokenFile(path)())
        assert found is not None
        assert found.id == component


def test_a_token_is_kept_as_a_digest_keyed_with_the_file_salt(tmp_path: Path) -> None:
    credentials = load_credentials(production(tmp_path, ("acme", ["requests:submit"], [SECRET])))
    assert SECRET not in str(credentials)
    found = credentials.by_token(SECRET)
    assert found is not None
    assert found.id == "acme"
    assert credentials.by_token(SECRET + "x") is None
    assert credentials.by_token("") is None
    # Another file's salt gives the same token another digest.
    assert token_digest("another-salt-entirely", SECRET) != token_digest(SALT, SECRET)


def test_a_digest_is_accepted_in_either_case(tmp_path: Path) -> None:
    digest = token_digest(SALT, SECRET).upper()
    path = write(tmp_path, f"salt: {SALT}\nprincipals:\n  - id: a\n    tokens: [{{hmac_sha256: {digest}}}]\n")
    found = load_credentials(path).by_token(SECRET)
    assert found is not None
    assert found.id == "a"


@pytest.mark.parametrize(("text", "expected"), [
    ("principals:\n  - {id: a, tokens: [{dev_token: dev-only-token-long-enough}]}\n",
     "file.yaml: plain 'dev_token' entries need 'development: true' (never in a production file: list "
     "hmac_sha256 digests)"),
    (f"development: true\nsalt: {SALT}\nprincipals:\n  - {{id: a, tokens: [{{dev_token: {SECRET}}}]}}\n",
     "file.yaml: principals[0].tokens[0].dev_token: a development token starts with 'dev-only-' and has at least "
     "16 printable ASCII characters"),
    ("principals:\n  - {id: a, tokens: [{hmac_sha256: abc}]}\n",
     "file.yaml: principals[0].tokens[0].hmac_sha256: not an HMAC-SHA256 hex digest (64 hexadecimal digits)"),
    (f"principals:\n  - {{id: a, tokens: [{{hmac_sha256: {'a' * 64}}}]}}\n",
     "file.yaml: 'salt' is required when a principal has tokens"),
    ("salt: short\nprincipals: []\n",
     "file.yaml: salt: at least 16 printable ASCII characters (random: `urctl credentials salt`)"),
    (f"salt: {SALT}\nprincipals:\n  - {{id: a, tokens: [{{}}]}}\n",
     "file.yaml: principals[0].tokens[0]: give exactly one of 'hmac_sha256' or (development files only) "
     "'dev_token'"),
    ("principals:\n  - {id: a, scopes: [requests:sumbit]}\n",
     f"file.yaml: principals[0].scopes[0]: is not one of {', '.join(SCOPES)}"),
    ("principals:\n  - {id: 'a b'}\n",
     "file.yaml: principals[0].id: letters, digits and . _ @ : - (at most 100, starting with a letter or digit)"),
    ("principals:\n  - {id: a, certificates: [{common_name: x, dns: y}]}\n",
     "file.yaml: principals[0].certificates[0]: give exactly one of 'common_name', 'dns' or 'uri'"),
    ("principals:\n  - {id: a, token: x}\n",
     "file.yaml: principals[0].token: unknown key (allowed: id, scopes, tokens, certificates)"),
    ("principals:\n  - {id: a}\n  - {id: a}\n", "file.yaml: principals[1].id: 'a' is also principals[0]"),
    (f"salt: {SALT}\nprincipals:\n  - {{id: a, tokens: [{{hmac_sha256: {'b' * 64}}}]}}\n"
     f"  - {{id: b, tokens: [{{hmac_sha256: {'b' * 64}}}]}}\n",
     "file.yaml: principals[1].tokens[0]: the same token as principals[0].tokens[0]"),
    ("principals:\n  - {id: a, certificates: [{dns: x.example}]}\n  - {id: b, certificates: [{dns: x.example}]}\n",
     "file.yaml: principals[1].certificates[0]: the same certificate name as principals[0].certificates[0]"),
    ("[]\n", "file.yaml: expected a mapping, got a list"),
])
def test_a_bad_credentials_file_is_refused_precisely_without_echoing_secrets(tmp_path: Path, text: str,
                                                                             expected: str) -> None:
    with pytest.raises(CredentialsFileError) as caught:
        load_credentials(write(tmp_path, text))
    assert str(caught.value) == expected
    assert isinstance(caught.value, ConfigurationError)
    for secret in (SECRET, "dev-only-token-long-enough"):
        assert secret not in str(caught.value)


def test_certificate_names_map_to_principals(tmp_path: Path) -> None:
    path = write(tmp_path, "principals:\n"
                           "  - {id: svc-review, scopes: [authorizations:read], certificates: [{dns: review.ur.svc}]}\n"
                           "  - {id: svc-claims, scopes: [authorizations:check], certificates: [{common_name: claims},"
                           " {uri: 'spiffe://ur/claims'}]}\n")
    credentials = load_credentials(path)
    assert {p.id for p in credentials.by_client_certificate({"peer_dns": [b"review.ur.svc"]})} == {"svc-review"}
    assert {p.id for p in credentials.by_client_certificate({"x509_common_name": [b"claims"]})} == {"svc-claims"}
    assert {p.id for p in credentials.by_client_certificate({"peer_uri": [b"spiffe://ur/claims"]})} == {"svc-claims"}
    # A common name is not a DNS name: each kind of name is matched as itself.
    assert credentials.by_client_certificate({"x509_common_name": [b"review.ur.svc"]}) == set()
    assert credentials.by_client_certificate({}) == set()


# -- reloading -------------------------------------------------------------------------------------


def rewrite(path: Path, writer: Callable[[], Path]) -> None:
    """Write the file anew, with a modification time surely unlike the last one's."""
    before = path.stat().st_mtime_ns
    writer()
    os.utime(path, ns=(before + 1_000_000_000, before + 1_000_000_000))


def test_a_changed_file_is_loaded_without_a_restart_and_a_revoked_token_stops_working(tmp_path: Path) -> None:
    old, new = SECRET, "a-brand-new-secret-after-rotation"
    path = production(tmp_path, ("acme", ["requests:submit"], [old]))
    source = CredentialsSource(path)
    assert source.current().by_token(old) is not None
    assert source.check() is False  # unchanged: nothing read
    rewrite(path, lambda: production(tmp_path, ("acme", ["requests:submit"], [old, new])))  # rotation: both
    assert source.check() is True
    assert source.current().by_token(old) is not None
    assert source.current().by_token(new) is not None
    rewrite(path, lambda: production(tmp_path, ("acme", ["requests:submit", "requests:read"], [new])))
    assert source.check() is True
    assert source.current().by_token(old) is None  # revoked
    found = source.current().by_token(new)
    assert found is not None
    assert found.scopes == {"requests:submit", "requests:read"}


def test_a_broken_or_missing_file_keeps_the_last_good_credentials(tmp_path: Path,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    path = production(tmp_path, ("acme", ["requests:submit"], [SECRET]))
    source = CredentialsSource(path)
    rewrite(path, lambda: write(tmp_path, "principals: [\n"))
    assert source.check() is False
    assert source.current().by_token(SECRET) is not None
    assert "changed but cannot be used; keeping the credentials in force" in caplog.text
    path.unlink()
    assert source.check() is False
    assert source.current().by_token(SECRET) is not None
    production(tmp_path, ("other", ["requests:read"], ["another-secret-for-other"]))
    assert source.check() is True
    assert source.current().by_token(SECRET) is None


def test_without_a_file_nobody_is_known(caplog: pytest.LogCaptureFixture) -> None:
    source = CredentialsSource(None)
    assert source.current().by_token(SECRET) is None
    assert source.check() is False
    assert "every call to this service is refused" in caplog.text


def test_a_bad_file_at_start_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(CredentialsFileError, match=r"^file\.yaml: principals\[0\]\.id: is required$"):
        CredentialsSource(write(tmp_path, "principals:\n  - {scopes: []}\n"))


# -- the client side -------------------------------------------------------------------------------


def test_a_token_file_is_read_again_when_it_changes(tmp_path: Path) -> None:
    path = write(tmp_path, "first-token-of-the-service\n", "token")
    token = TokenFile(path)
    assert token() == "first-token-of-the-service"
    rewrite(path, lambda: write(tmp_path, "second-token-of-the-service\n", "token"))
    assert token() == "second-token-of-the-service"
    rewrite(path, lambda: write(tmp_path, "\n", "token"))  # half written: the last good one is sent
    assert token() == "second-token-of-the-service"
    with pytest.raises(ConfigurationError, match="expected one token"):
        TokenFile(path)
    with pytest.raises(ConfigurationError, match="cannot read the token"):
        TokenFile(tmp_path / "absent")


class Details(grpc.ClientCallDetails):
    def __init__(self, metadata: list[tuple[str, str]] | None) -> None:
        self.method = "/ur.intake.v1.IntakeService/GetRequest"
        self.timeout = 5.0
        self.metadata = tuple(metadata) if metadata is not None else None
        self.credentials = None
        self.wait_for_ready = None
        self.compression = None


def sent(interceptor: BearerToken, metadata: list[tuple[str, str]] | None) -> list[tuple[str, str]]:
    seen: list[Any] = []

    def continuation(details: grpc.ClientCallDetails, request: object) -> None:
        seen.append(list(details.metadata or ()))

    interceptor.intercept_unary_unary(continuation, Details(metadata), object())
    return list(seen[0])


def test_the_bearer_interceptor_adds_the_token_unless_the_call_brings_its_own() -> None:
    interceptor = BearerToken("the-service-token")
    assert sent(interceptor, None) == [("authorization", "Bearer the-service-token")]
    assert sent(interceptor, [("x-trace", "1")]) == [("x-trace", "1"), ("authorization", "Bearer the-service-token")]
    reviewer = [("authorization", "Bearer the-reviewer-token")]
    assert sent(interceptor, reviewer) == reviewer
    assert sent(BearerToken(lambda: "from-a-file"), None) == [("authorization", "Bearer from-a-file")]
