"""The doors' smaller parts: the token issuer, the payers file, which problems are refusals, updates."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from ur.common.v1 import types_pb2

from services.common.errors import Unauthenticated
from services.intake.adapters.door_payers import PayersError, read_payers
from services.intake.interop.pas.outcome import Problem
from services.intake.interop.pas.refusal import split
from services.intake.interop.pas.update import is_update, read_update
from services.intake.service_layer import door_auth
from services.intake.service_layer.door_auth import TokenIssuer
from tests.conftest import REPO
from tests.fakes.door import NOW, FakeClients
from tests.unit.interop.pas_fixtures import claim, complete_bundle, example


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> dt.datetime:
        return self.now


def test_tokens_stand_for_their_client_until_they_expire() -> None:
    clock = Clock()
    issuer = TokenIssuer(FakeClients({"clinic": ["s1", "s2"]}), clock=clock, lifetime_s=60)
    first, second = issuer.issue("clinic", "s1"), issuer.issue("clinic", "s2")
    assert first.access_token != second.access_token
    assert first.expires_in == 60
    assert issuer.submitter(first.access_token).credential == "s1"
    assert issuer.submitter(second.access_token).credential == "s2"
    assert "s1" not in repr(issuer.submitter(first.access_token))
    clock.now += dt.timedelta(seconds=60)
    with pytest.raises(Unauthenticated):
        issuer.submitter(first.access_token)
    assert len(issuer) == 1


@pytest.mark.parametrize(("client", "secret"), [("clinic", "nope"), ("other", "s1"), ("", "s1"), ("clinic", "")])
def test_wrong_credentials_get_one_answer(client: str, secret: str) -> None:
    issuer = TokenIssuer(FakeClients({"clinic": ["s1"]}), clock=Clock(), lifetime_s=60)
    with pytest.raises(Unauthenticated, match=r"^invalid client credentials$"):
        issuer.issue(client, secret)


def test_a_client_holds_a_bounded_number_of_live_tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(door_auth, "MAX_TOKENS_PER_CLIENT", 3)
    issuer = TokenIssuer(FakeClients({"clinic": ["s1"]}), clock=Clock(), lifetime_s=60)
    tokens = [issuer.issue("clinic", "s1").access_token for _ in range(5)]
    assert len(issuer) == 3
    with pytest.raises(Unauthenticated):
        issuer.submitter(tokens[0])
    assert issuer.submitter(tokens[-1]).id == "clinic"


def test_the_sample_payers_file_reads() -> None:
    payers = read_payers(REPO / "deploy" / "sample" / "payers.yaml")
    assert payers["LSHP01"].line_of_business == types_pb2.LINE_OF_BUSINESS_MEDICARE_ADVANTAGE
    assert payers["1234567893"].state == "MD"


@pytest.mark.parametrize(("text", "field"), [
    ("payers:\n  - {identifier: A, line_of_business: medicare}\n", "payers[0].line_of_business"),
    ("payers:\n  - {identifier: A, line_of_business: medicaid, state: ZZ}\n", "payers[0].state"),
    ("payers:\n  - {identifier: A, line_of_business: medicaid}\n  - {identifier: A, line_of_business: medicaid}\n",
     "payers[1].identifier"),
    ("payers:\n  - {identifier: A, line_of_business: medicaid, colour: red}\n", "payers[0].colour"),
])
def test_a_bad_payers_file_names_the_entry(tmp_path: Path, text: str, field: str) -> None:
    path = tmp_path / "payers.yaml"
    path.write_text(text)
    with pytest.raises(PayersError) as caught:
        read_payers(path)
    assert caught.value.field == field


def test_problems_the_profiles_make_are_invalid_and_the_platforms_needs_are_refusals() -> None:
    bundle: dict[str, Any] = example("Bundle-MedicalServicesAuthorizationBundleExample.json")
    platform = [Problem("Bundle.entry[0].resource.diagnosis", "required", "x"),
                Problem("Bundle.entry[3].resource.type", "required", "x"),  # the Coverage
                Problem("Bundle.entry[4].resource.address", "required", "x")]  # the Patient
    invalid, refusals = split(platform, bundle)
    assert invalid == []
    assert [(r.code, r.loop, r.path) for r in refusals] == [
        ("AF", "2000E", "Bundle.entry[0].resource.diagnosis"), ("15", "2010C", "Bundle.entry[3].resource.type"),
        ("15", "2010C", "Bundle.entry[4].resource.address")]
    profile = Problem("Bundle.entry[0].resource.use", "value", "x")
    assert split([*platform, profile], bundle) == ([*platform, profile], [])
    assert split([Problem("Bundle.entry[0].resource.item[0].servicedDate", "value", "PAS FullDateRule: ...")],
                 bundle)[1] == []


def test_an_update_is_recognised_by_its_relation_or_profile() -> None:
    assert is_update(example("Bundle-HomecareAuthorizationUpdateBundleExample.json"))
    assert not is_update(complete_bundle())
    assert not is_update({"entry": "x"})
    assert not is_update([])
    bundle = complete_bundle()
    claim(bundle)["meta"] = {"profile": ["http://hl7.org/fhir/us/davinci-pas/StructureDefinition/profile-claim-update"]}
    assert is_update(bundle)
    found = read_update(bundle)
    assert isinstance(found, list)
    assert [(p.code, p.expression) for p in found] == [("required", "Bundle.entry[0].resource.related")]


def test_the_guides_update_example_names_its_prior_claim() -> None:
    update = read_update(example("Bundle-HomecareAuthorizationUpdateBundleExample.json"))
    assert isinstance(update, list)  # it cancels item 2 only
    assert [(p.code, p.expression) for p in update] == [
        ("not-supported", "Bundle.entry[0].resource.item[1].modifierExtension[0]")]
