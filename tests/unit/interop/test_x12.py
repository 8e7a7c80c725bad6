"""X12 278: tokenizer, envelope, 999/TA1, request mapping, response writer, round trips."""

from __future__ import annotations

import random
from typing import Any

import pytest
from ur.common.v1 import types_pb2 as t
from ur.intake.v1 import intake_pb2

from services.intake.domain.model import validate
from services.intake.entrypoints.mapping import to_domain
from services.intake.interop.answers import Rejection
from services.intake.interop.x12 import Receipt, receive_278, reply_envelope, response_278
from services.intake.interop.x12.edi import InterchangeRejection, Segment, tokenize
from services.intake.interop.x12.envelope import Interchange, read_interchange
from services.intake.interop.x12.request278 import ENTITY_LOOPS, LEVEL_LOOPS
from tests.unit.interop.pas_fixtures import view_for
from tests.unit.interop.x12_fixtures import (
    AT,
    PAYER_ID,
    PAYERS,
    REQUESTER_NPI,
    SERVICE_NPI,
    interchange,
    isa,
    service,
    transaction,
)


def receive(text: str) -> Receipt:
    return receive_278(text, "submitter-1", PAYERS, at=AT, interchange_control=41, group_control=7)


def segments(text: str) -> list[Segment]:
    tokens = tokenize(text)
    assert not isinstance(tokens, InterchangeRejection), tokens
    return tokens[1]


def tags(text: str, tag: str) -> list[tuple[str, ...]]:
    return [s.elements for s in segments(text) if s.tag == tag]


def one_command(text: str) -> intake_pb2.SubmitRequestRequest:
    receipt = receive(text)
    [received] = receipt.requests
    assert isinstance(received.outcome, intake_pb2.SubmitRequestRequest), received.outcome
    assert not validate(to_domain(received.outcome))
    return received.outcome


def loops(text: str) -> list[tuple[str, Segment]]:
    """Each segment of a 278 with the loop it sits in."""
    out, level, in_entity = [], "", False
    for seg in segments(text):
        if seg.tag == "HL":
            level, in_entity = seg.get(3), False
        elif seg.tag == "NM1":
            in_entity = True
        loop = (ENTITY_LOOPS if in_entity else LEVEL_LOOPS).get(level, "")
        out.append((loop, seg))
    return out


def aaa(text: str) -> list[tuple[str, str, str]]:
    return [(loop, seg.get(3), seg.get(4)) for loop, seg in loops(text) if seg.tag == "AAA"]


def envelope_is_sound(text: str) -> Interchange:
    """Control numbers and counts agree at every level (a 999 group is not a 278 one: GS01/GS08,
    ST01/ST03 differ by design)."""
    read = read_interchange(text)
    assert isinstance(read, Interchange), read
    for group in read.groups:
        ack = group.header.get(1) == "FA"
        assert set(group.errors) <= ({"1", "2"} if ack else set()), group.errors
        for ts in group.transactions:
            assert set(ts.set_errors) <= ({"1", "I6"} if ack else set()), ts.set_errors
    return read


# -- tokenizer and envelope ---------------------------------------------------------------------

def test_delimiters_come_from_the_isa() -> None:
    text = interchange(transaction())
    custom = text.replace("*", "|").replace(":", ">").replace("~\n", "\n").replace("^", "!")
    custom = custom.replace("|!|00501", "|!|00501")
    assert tokenize(custom) != tokenize(text)
    assert one_command(custom) == one_command(text)


def test_segments_without_line_breaks_read_the_same() -> None:
    text = interchange(transaction())
    assert one_command(text.replace("\n", "")) == one_command(text)


@pytest.mark.parametrize(("text", "code"), [
    ("GS*HI*A*B~", "022"),
    ("ISA*00*", "023"),
    (isa() + "~GS*HI~", "023"),
    (isa(sep="A") + "~", "026"),
    (isa(comp="A") + "~", "027"),
    (isa(version="00401") + "~GS*HI*A*B*20260301*1000*1*X*005010X217~GE*0*1~IEA*1*000000905~", "017"),
    (isa(control="12345678X") + "~", "018"),
    (isa() + "~GS*HI*A*B*20260301*1000*1*X*005010X217~GE*0*1~IEA*1*000000906~", "001"),
    (isa() + "~GS*HI*A*B*20260301*1000*1*X*005010X217~GE*0*1~IEA*2*000000905~", "021"),
    (isa() + "~ST*278*0001*005010X217~SE*2*0001~IEA*0*000000905~", "024"),
    (isa() + "~GS*HI*A*B*20260301*1000*1*X*005010X217~GE*0*1~", "023"),
    (isa(usage="X") + "~IEA*0*000000905~", "020"),
    (isa() + "~gs*x~IEA*0*000000905~", "024"),
])
def test_unreadable_interchanges_get_a_ta1(text: str, code: str) -> None:
    read = read_interchange(text)
    assert isinstance(read, InterchangeRejection), read
    assert read.code == code, read
    receipt = receive(text)
    assert receipt.requests == ()
    assert receipt.interchange is None
    [ta1] = tags(receipt.acknowledgment, "TA1")
    assert ta1[3:] == ("R", code)


def _ack(receipt: Receipt) -> dict[str, list[tuple[str, ...]]]:
    found: dict[str, list[tuple[str, ...]]] = {}
    for seg in segments(receipt.acknowledgment):
        found.setdefault(seg.tag, []).append(seg.elements)
    return found


def test_an_accepted_interchange_gets_a_999_accepting_it() -> None:
    receipt = receive(interchange(transaction()))
    ack = _ack(receipt)
    assert ack["AK1"] == [("HI", "17", "005010X217")]
    assert ack["AK2"] == [("278", "0001", "005010X217")]
    assert ack["IK5"] == [("A",)]
    assert ack["AK9"] == [("A", "1", "1", "1")]
    assert ack["GS"][0][0] == "FA"
    assert ack["GS"][0][7] == "005010X231A1"
    assert ack["ISA"][0][5].strip() == "URPLATFORM"
    assert ack["ISA"][0][7].strip() == "PROVIDERSUB"
    assert ack["ISA"][0][12] == "000000041"
    envelope_is_sound(receipt.acknowledgment)


@pytest.mark.parametrize(("change", "ik5"), [
    (lambda body: [*body[:-1], body[-1].replace("SE*", "SE*9")], ("R", "4")),  # segment count
    (lambda body: [*body[:-1], body[-1].replace("*0001~", "*0002~")], ("R", "3")),  # control number
    (lambda body: body[:-1], ("R", "2")),  # no SE
    (lambda body: [body[0].replace("005010X217", "005010X215"), *body[1:]], ("R", "I6")),
    (lambda body: [body[0].replace("ST*278", "ST*270"), *body[1:]], ("R", "1")),
])
def test_transaction_set_faults_are_rejected_in_the_999(change: Any, ik5: tuple[str, ...]) -> None:
    receipt = receive(interchange(change(transaction())))
    assert receipt.requests == ()
    ack = _ack(receipt)
    assert ack["IK5"][0][:2] == ik5
    assert ack["AK9"][0][0] == "R"


def test_one_bad_transaction_set_among_good_ones_is_a_partial_acceptance() -> None:
    good = transaction(control="0001")
    bad = transaction(control="0002")
    bad[-1] = bad[-1].replace("SE*", "SE*1")
    receipt = receive(interchange(good, bad))
    assert len(receipt.requests) == 1
    ack = _ack(receipt)
    assert [a[:2] for a in ack["IK5"]] == [("A",), ("R", "4")]
    assert ack["AK9"] == [("P", "2", "2", "1")]


def test_duplicate_transaction_control_numbers_are_rejected() -> None:
    receipt = receive(interchange(transaction(control="0001"), transaction(control="0001")))
    assert [a[:2] for a in _ack(receipt)["IK5"]] == [("A",), ("R", "23")]


@pytest.mark.parametrize(("kwargs", "ak9"), [
    ({"declared_sets": 3}, ("R", "3", "1", "0", "5")),
    ({"gs_version": "004010X094A1"}, ("R", "1", "1", "0", "2")),
])
def test_group_faults_reject_the_group(kwargs: dict[str, Any], ak9: tuple[str, ...]) -> None:
    receipt = receive(interchange(transaction(), **kwargs))
    assert receipt.requests == ()
    assert _ack(receipt)["AK9"] == [ak9]


# -- 278 syntax (999 IK3/IK4) -------------------------------------------------------------------

def _ik(text: str) -> list[tuple[tuple[str, ...], list[tuple[str, ...]]]]:
    """(IK3, [IK4...]) pairs of a 999."""
    receipt = receive(text)
    assert receipt.requests == ()
    out: list[tuple[tuple[str, ...], list[tuple[str, ...]]]] = []
    for seg in segments(receipt.acknowledgment):
        if seg.tag == "IK3":
            out.append((seg.elements, []))
        elif seg.tag == "IK4":
            out[-1][1].append(seg.elements)
    assert _ack(receipt)["IK5"][0][:2] == ("R", "5")
    return out


def _without(body: list[str], prefix: str) -> list[str]:
    kept = [s for s in body if not s.startswith(prefix)]
    return [*kept[:-1], f"SE*{len(kept)}*0001~"]


def test_missing_bht_is_a_required_segment_missing() -> None:
    assert _ik(interchange(_without(transaction(), "BHT"))) == [(("BHT", "2", "", "3"), [])]


def test_a_response_code_in_a_request_bht_is_an_invalid_code() -> None:
    found = _ik(interchange(transaction(bht="BHT*0007*11*REF-0001*20260301*1000~")))
    assert found == [(("BHT", "2", "", "8"), [("2", "353", "7", "11")])]


def test_invalid_service_date_names_segment_loop_and_element() -> None:
    body = transaction(services=[service(1, dates="DTP*472*D8*20260231~")])
    [(ik3, ik4s)] = _ik(interchange(body))
    assert ik3[0] == "DTP"
    assert ik3[2:] == ("2000F", "8")
    assert ik4s == [("3", "1251", "8", "20260231")]
    assert body[int(ik3[1]) - 1].startswith("DTP*472*D8*20260231")  # IK302 counts from ST


def test_service_without_um_is_a_required_segment_missing() -> None:
    found = _ik(interchange(transaction(services=[service(1, um="")])))
    assert [ik3 for ik3, _ in found] == [("UM", found[0][0][1], "2000F", "3")]


def test_missing_subscriber_loop() -> None:
    body = transaction()
    start = next(i for i, s in enumerate(body) if s.startswith("HL*3*2*22"))
    stop = next(i for i, s in enumerate(body) if s.startswith("HL*4*3*EV"))
    body = body[:start] + body[stop:]
    body = [s.replace("HL*4*3*EV", "HL*3*2*EV").replace("HL*5*4*SS", "HL*4*3*SS") for s in body]
    body[-1] = f"SE*{len(body)}*0001~"
    found = _ik(interchange(body))
    assert ("HL", found[0][0][1], "2000E", "8") in [ik3 for ik3, _ in found]  # EV under a requester
    assert any(ik3[2:] == ("2000C", "3") for ik3, _ in found)


def test_subscriber_without_member_id_is_an_element_error() -> None:
    found = _ik(interchange(transaction(member="")))
    [(ik3, ik4s)] = found
    assert ik3[2:] == ("2010C", "8")
    assert ("9", "67", "1") in ik4s  # no copy of a missing value


@pytest.mark.parametrize(("kwargs", "segment", "loop", "ik4"), [
    ({"hi": "HI*ZZZ:M5416~"}, "HI", "2000E", ("1:1", "1270", "7", "ZZZ M5416")),  # no delimiters in IK404
    ({"event_um": "UM*HS*X*73*22:B~"}, "UM", "2000E", ("2", "1322", "7", "X")),
    ({"event_um": "UM*HS*I*73*22:Q~"}, "UM", "2000E", ("4:2", "1332", "7", "Q")),
    ({"subscriber_extra": "DMG*D8*19601320*M~"}, "DMG", "2010C", ("2", "1251", "8", "19601320")),
    ({"services": [service(1, sv="SV1*HC:72148**UN*x1~")]}, "SV1", "2000F", ("4", "380", "6", "x1")),
])
def test_element_errors(kwargs: dict[str, Any], segment: str, loop: str, ik4: tuple[str, ...]) -> None:
    [(ik3, ik4s)] = _ik(interchange(transaction(**kwargs)))
    assert (ik3[0], ik3[2], ik3[3]) == (segment, loop, "8")
    assert ik4s == [tuple(e for e in ik4 if e)]


# -- mapping each HL level ----------------------------------------------------------------------

def test_every_level_maps_into_the_command() -> None:
    text = interchange(transaction(
        services=[
            service(1, "72148", provider=f"NM1*SJ*2*AUSTIN IMAGING*****XX*{SERVICE_NPI}~"),
            service(2, "97110", sv="SV1*HC:97110:GP:59**UN*12~", dates="DTP*472*RD8*20260302-20260330~",
                    hsd="HSD*VS*12~", provider=f"NM1*SJ*2*AUSTIN IMAGING*****XX*{SERVICE_NPI}~"),
            service(3, "99223", sv="SV2*0120*HC:99223*1500*DA*3~", um="UM*AR*I*48*11:A~", dates=""),
        ],
        event_dates="DTP*435*RD8*20260302-20260304~"))
    cmd = one_command(text)
    # 2000A: the payer profile
    assert (cmd.coverage.line_of_business, cmd.coverage.plan_id) == (t.LINE_OF_BUSINESS_MEDICARE_ADVANTAGE, "MA-GOLD")
    # 2000B: the requester
    assert cmd.requesting_provider == t.Provider(npi=REQUESTER_NPI, name="SUSAN WATSON")
    # 2000C: member, state, age from the birth date on BHT04
    assert (cmd.member_id, cmd.coverage.member_state) == ("M-1001", "TX")
    assert [(f.name, f.number_value) for f in cmd.clinical_facts] == [("age_years", 65.0)]
    # 2000E: diagnoses (dots restored, principal first), urgency, review type
    assert [(d.code, d.primary) for d in cmd.diagnoses] == [("M54.16", True), ("M54.50", False)]
    assert cmd.urgency == t.URGENCY_EXPEDITED  # UM06 U
    assert cmd.review_type == t.REVIEW_TYPE_PROSPECTIVE
    # 2000F: lines, in order
    one, two, three = cmd.service_lines
    assert (one.line_number, one.procedure_code, one.units, one.start_date.day) == (1, "72148", 1, 2)
    assert (two.procedure_code, list(two.modifiers), two.units, two.end_date.day) == ("97110", ["GP", "59"], 12, 30)
    assert (three.procedure_code, three.units, three.start_date.day, three.end_date.day) == ("99223", 3, 2, 4)
    assert three.place_of_service == t.PLACE_OF_SERVICE_INPATIENT_HOSPITAL  # UM04 11:A, a hospital inpatient bill
    assert one.place_of_service == t.PLACE_OF_SERVICE_OUTPATIENT_HOSPITAL  # UM04 22:B
    # 2010F: the service provider
    assert cmd.servicing_provider == t.Provider(npi=SERVICE_NPI, name="AUSTIN IMAGING")
    assert cmd.idempotency_key.startswith("x12-")


def test_quantity_from_hsd_and_renewal_is_concurrent() -> None:
    cmd = one_command(interchange(transaction(
        event_um="UM*AR*R*48*21:B~", services=[service(1, "99232", sv="SV1*HC:99232~", hsd="HSD*DY*5~")])))
    assert cmd.review_type == t.REVIEW_TYPE_CONCURRENT
    assert cmd.urgency == t.URGENCY_STANDARD
    assert cmd.service_lines[0].units == 5


def test_services_given_before_the_request_are_retrospective() -> None:
    cmd = one_command(interchange(transaction(services=[service(1, dates="DTP*472*D8*20260215~")])))
    assert cmd.review_type == t.REVIEW_TYPE_RETROSPECTIVE


def test_idempotency_key_follows_submitter_and_bht_reference() -> None:
    text = interchange(transaction())
    first = one_command(text).idempotency_key
    assert first == one_command(text).idempotency_key
    other = interchange(transaction(bht="BHT*0007*13*REF-0002*20260301*1000~"))
    assert one_command(other).idempotency_key != first
    [received] = receive_278(text, "submitter-2", PAYERS, at=AT, interchange_control=1, group_control=1).requests
    assert isinstance(received.outcome, intake_pb2.SubmitRequestRequest)
    assert received.outcome.idempotency_key != first


# -- rejections (AAA) ---------------------------------------------------------------------------

REJECTIONS = [
    ("unknown payer", {"payer": "OTHER"}, ("2010A", "79", 0)),
    ("requester without NPI", {"requester_npi": "1245319598"}, ("2010B", "43", 0)),
    ("invalid member id", {"member": "M 1001"}, ("2010C", "72", 0)),
    ("invalid state", {"subscriber_extra": "N4*AUSTIN*XX*78701~"}, ("2010C", "15", 0)),
    ("born after the request", {"subscriber_extra": "N4*AUSTIN*TX*78701~DMG*D8*20270101*M~"}, ("2010C", "58", 0)),
    ("a dependent", {"dependent": True}, ("2010D", "64", 0)),
    ("a revision", {"event_um": "UM*HS*S*73*22:B~"}, ("2000E", "33", 0)),
    ("no diagnosis", {"hi": ""}, ("2000E", "AF", 0)),
    ("ICD-9 diagnosis", {"hi": "HI*BK:7242~"}, ("2000E", "AF", 0)),
    ("not an ICD-10-CM code", {"hi": "HI*ABK:12345~"}, ("2000E", "AF", 0)),
    ("no services", {"services": []}, ("2000E", "AG", 0)),
    ("service type only", {"services": [service(1, sv="")]}, ("2000F", "AG", 1)),
    ("not HCPCS qualifier", {"services": [service(1, sv="SV1*ZZ:72148~")]}, ("2000F", "AG", 1)),
    ("not a procedure code", {"services": [service(1, "7214")]}, ("2000F", "AG", 1)),
    ("no service date", {"services": [service(1), service(2, dates="")], "event_dates": ""}, ("2000F", "57", 2)),
    ("unsupported place", {"services": [service(1, pos="99:B")], "event_um": "UM*HS*I*73~"}, ("2000F", "33", 1)),
    ("fractional quantity", {"services": [service(1, sv="SV1*HC:72148**UN*2.5~")]}, ("2000F", "33", 1)),
    ("two service providers", {"services": [service(1, provider=f"NM1*SJ*2*A*****XX*{SERVICE_NPI}~"),
                                            service(2, provider="NM1*SJ*2*B*****XX*1245319599~")]},
     ("2000F", "33", 1)),
]


@pytest.mark.parametrize(("name", "kwargs", "expected"), REJECTIONS, ids=[r[0] for r in REJECTIONS])
def test_every_rejection_path_round_trips_to_an_aaa_in_its_loop(name: str, kwargs: dict[str, Any],
                                                                 expected: tuple[str, str, int]) -> None:
    text = interchange(transaction(**kwargs))
    receipt = receive(text)
    [received] = receipt.requests
    assert isinstance(received.outcome, list), f"{name}: {received.outcome}"
    assert [(r.loop, r.code, r.line) for r in received.outcome] == [expected]
    assert receipt.interchange is not None
    answer = response_278(received.request, reply_envelope(receipt.interchange, 42, 8, AT),
                          rejections=received.outcome)
    envelope_is_sound(answer)
    loop, code, _line = expected
    assert aaa(answer) == [(loop, code, received.outcome[0].followup)]
    assert tags(answer, "HCR") == []  # a rejected request has no review outcome
    if loop == "2000F":
        hl_of_aaa = [seg for lp, seg in loops(answer) if seg.tag == "HL" and lp == "2000F"]
        assert len(hl_of_aaa) == len(received.request.services)


def test_member_state_from_the_payer_profile_when_n4_is_absent() -> None:
    assert one_command(interchange(transaction(subscriber_extra="DMG*D8*19600520*M~"))).coverage.member_state == "TX"


def test_member_state_missing_everywhere_is_15() -> None:
    from services.intake.interop.payers import PayerProfile

    payers = {PAYER_ID: PayerProfile(t.LINE_OF_BUSINESS_COMMERCIAL)}
    receipt = receive_278(interchange(transaction(subscriber_extra="")), "s", payers, at=AT, interchange_control=1,
                          group_control=1)
    [received] = receipt.requests
    assert isinstance(received.outcome, list)
    assert [(r.loop, r.code) for r in received.outcome] == [("2010C", "15")]


def test_unavailable_intake_answers_42_in_2000a() -> None:
    receipt = receive(interchange(transaction()))
    [received] = receipt.requests
    assert receipt.interchange is not None
    answer = response_278(received.request, reply_envelope(receipt.interchange, 42, 8, AT),
                          rejections=[Rejection("2000A", "42", "P", "intake is unavailable")])
    assert aaa(answer) == [("2000A", "42", "P")]


@pytest.mark.parametrize(("reason", "code"), [("member not found", "75"), ("coverage not active on 2026-03-02", "78")])
def test_an_ineligible_view_answers_in_2010c(reason: str, code: str) -> None:
    receipt = receive(interchange(transaction()))
    [received] = receipt.requests
    assert isinstance(received.outcome, intake_pb2.SubmitRequestRequest)
    assert receipt.interchange is not None
    view = view_for(received.outcome, status=intake_pb2.REQUEST_STATUS_INELIGIBLE, status_reason=reason)
    answer = response_278(received.request, reply_envelope(receipt.interchange, 42, 8, AT), view=view)
    assert aaa(answer)[0][:2] == ("2010C", code)


# -- responses from a determination -------------------------------------------------------------

def _answer(decisions: list[dict[str, Any]], **kwargs: Any) -> tuple[str, Any]:
    receipt = receive(interchange(transaction(**kwargs)))
    [received] = receipt.requests
    assert isinstance(received.outcome, intake_pb2.SubmitRequestRequest)
    assert receipt.interchange is not None
    view = view_for(received.outcome, *decisions)
    answer = response_278(received.request, reply_envelope(receipt.interchange, 42, 8, AT), view=view)
    return answer, received


def test_response_per_service_with_certification_dates_and_quantity() -> None:
    physician = t.DeciderRef(id="dr-1", role="physician", name="Dr. Ada", credential="MD")
    answer, _received = _answer([
        {"action": t.ACTION_CODE_CERTIFIED_IN_TOTAL, "units": 1, "auth": "UR26-8K3F-Q9ZD",
         "reasons": ["meets criteria"]},
        {"action": t.ACTION_CODE_CERTIFIED_PARTIAL, "units": 6, "auth": "UR26-0000-0002", "by": physician,
         "end": t.Date(year=2026, month=3, day=16), "reasons": ["approved in part: 6 visits"]},
        {"action": t.ACTION_CODE_PENDED, "reasons": ["referred to nurse review"]},
        {"action": t.ACTION_CODE_NOT_CERTIFIED, "by": physician, "reasons": ["denied: not medically necessary"]},
    ], services=[service(1), service(2, "97110", sv="SV1*HC:97110**UN*12~",
                                       dates="DTP*472*RD8*20260302-20260330~", hsd="HSD*VS*12~"),
                 service(3, "73721"), service(4, "E0601")])
    read = envelope_is_sound(answer)
    [ts] = read.groups[0].transactions
    assert ts.code == "278"
    assert ts.accepted
    assert tags(answer, "BHT") == [("0007", "11", "REF-0001", "20260301", "1000")]
    assert tags(answer, "HCR") == [("A1", "UR26-8K3F-Q9ZD"), ("A2", "UR26-0000-0002"), ("A4",), ("A3",)]
    by_loop = loops(answer)
    service_segments: list[list[tuple[str, ...]]] = []
    for loop, seg in by_loop:
        if seg.tag == "HL" and seg.get(3) == "SS":
            service_segments.append([])
        elif loop == "2000F" and service_segments:
            service_segments[-1].append((seg.tag, *seg.elements))
    first, second, third, fourth = service_segments
    assert ("TRN", "2", "SVC1", "9012345678") in first  # the request's trace, referenced
    assert ("DTP", "102", "D8", "20260301") in first
    assert ("DTP", "007", "D8", "20260302") in first
    assert ("DTP", "036", "D8", "20260302") in first
    assert ("HSD", "FL", "1") in first
    assert ("DTP", "036", "D8", "20260316") in second
    assert ("HSD", "VS", "6") in second
    assert not [s for s in third + fourth if s[0] == "DTP" and s[1] in ("102", "007", "036")]
    assert ("REF", "NT", "6f1c2a44-0b7e-4b8a-9d55-1c0f7e3a9b21") in [(s.tag, *s.elements) for s in segments(answer)]
    [msg] = tags(answer, "MSG")
    assert "line 4 A3 - denied not medically necessary" in msg[0]
    assert len(msg[0]) <= 264
    hls = tags(answer, "HL")
    assert [h[2] for h in hls] == ["20", "21", "22", "EV", "SS", "SS", "SS", "SS"]
    assert all(h[1] == "4" for h in hls if h[2] == "SS")


def test_response_round_trips_through_our_own_reader_with_any_delimiters() -> None:
    text = interchange(transaction())
    custom = text.replace("*", "|").replace(":", ">").replace("^", "!")
    receipt = receive(custom)
    [received] = receipt.requests
    assert isinstance(received.outcome, intake_pb2.SubmitRequestRequest)
    assert receipt.interchange is not None
    view = view_for(received.outcome, {"action": t.ACTION_CODE_CERTIFIED_IN_TOTAL, "units": 1, "auth": "UR26-1"})
    answer = response_278(received.request, reply_envelope(receipt.interchange, 42, 8, AT), view=view)
    envelope_is_sound(answer)
    assert ("22", "B") in [tuple(um[3].split(":")) for um in tags(answer, "UM")]  # composites re-joined with ':'
    assert tags(answer, "HCR") == [("A1", "UR26-1")]


def test_a_dependent_is_echoed_in_2000d_when_rejected() -> None:
    receipt = receive(interchange(transaction(dependent=True)))
    [received] = receipt.requests
    assert isinstance(received.outcome, list)
    assert receipt.interchange is not None
    answer = response_278(received.request, reply_envelope(receipt.interchange, 42, 8, AT),
                          rejections=received.outcome)
    assert [h[2] for h in tags(answer, "HL")] == ["20", "21", "22", "23", "EV", "SS"]
    assert tags(answer, "NM1")[3][:4] == ("QC", "1", "SMITH", "ANN")


# -- hostile interchanges -----------------------------------------------------------------------

def _hostile(rng: random.Random) -> list[str]:
    base = interchange(transaction(services=[service(1), service(2, "97110")]))
    lines = base.split("\n")
    cases = []
    for _ in range(40):
        cut = lines.copy()
        del cut[rng.randrange(1, len(cut) - 2)]
        cases.append("\n".join(cut))
    for _ in range(40):
        changed = lines.copy()
        i = rng.randrange(2, len(changed) - 3)
        parts = changed[i].rstrip("~").split("*")
        j = rng.randrange(len(parts))
        parts[j] = rng.choice(["", "X" * 300, "99999999", "HC:", ":::", "^", "-1", "ZZ", "20269999"])
        changed[i] = "*".join(parts) + "~"
        cases.append("\n".join(changed))
    for _ in range(10):
        cases.append(base[: rng.randrange(len(base))])
    cases += ["", "\x00" * 200, "ISA" + "*" * 200, base * 3, base.replace("~", ""),
              "".join(chr(rng.randrange(32, 127)) for _ in range(500))]
    return cases


@pytest.mark.parametrize("text", _hostile(random.Random(278)))
def test_hostile_interchanges_are_acknowledged_never_raise(text: str) -> None:
    receipt = receive(text)
    assert tags(receipt.acknowledgment, "TA1") or tags(receipt.acknowledgment, "AK9")
    for received in receipt.requests:
        if isinstance(received.outcome, intake_pb2.SubmitRequestRequest):
            assert not validate(to_domain(received.outcome))
        assert receipt.interchange is not None
        answer = response_278(received.request, reply_envelope(receipt.interchange, 1, 1, AT),
                              rejections=received.outcome if isinstance(received.outcome, list) else [])
        envelope_is_sound(answer)
