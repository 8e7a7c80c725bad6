"""Hand-built 278 interchanges for the tests."""

from __future__ import annotations

import datetime as dt

from ur.common.v1 import types_pb2

from services.intake.interop.payers import PayerProfile

PAYER_ID = "LSHP01"
PAYERS = {PAYER_ID: PayerProfile(types_pb2.LINE_OF_BUSINESS_MEDICARE_ADVANTAGE, plan_id="MA-GOLD", state="TX")}
AT = dt.datetime(2026, 3, 1, 16, 0, tzinfo=dt.UTC)
REQUESTER_NPI = "1245319599"
SERVICE_NPI = "1234567893"


def isa(control: str = "000000905", *, sep: str = "*", comp: str = ":", rep: str = "^",
        version: str = "00501", usage: str = "T") -> str:
    fields = ["ISA", "00", " " * 10, "00", " " * 10, "ZZ", "PROVIDERSUB".ljust(15), "ZZ", "URPLATFORM".ljust(15),
              "260301", "1000", rep, version, control, "1", usage]
    return sep.join(fields) + sep + comp


def service(n: int, code: str = "72148", *, sv: str | None = None, dates: str = "DTP*472*D8*20260302~",
            pos: str = "22:B", um: str | None = None, hsd: str = "", provider: str = "") -> list[str]:
    return ["HL*{hl}*{ev}*SS*0~", f"TRN*1*SVC{n}*9012345678~",
            um if um is not None else f"UM*HS*I*73*{pos}~",
            *([dates] if dates else []), sv if sv is not None else f"SV1*HC:{code}**UN*1~",
            *([hsd] if hsd else []), *([provider] if provider else [])]


def transaction(*, control: str = "0001", services: list[list[str]] | None = None, dependent: bool = False,
                payer: str = PAYER_ID, requester_npi: str = REQUESTER_NPI, member: str = "M-1001",
                subscriber_extra: str = "N3*1 MAIN ST~N4*AUSTIN*TX*78701~DMG*D8*19600520*M~",
                event_um: str = "UM*HS*I*73*22:B**U~", hi: str = "HI*ABK:M5416*ABF:M5450~",
                event_dates: str = "DTP*AAH*D8*20260302~", bht: str = "BHT*0007*13*REF-0001*20260301*1000~",
                event_providers: str = "") -> list[str]:
    """The body of one 278 request (ST..SE) with HL numbers filled in and SE counted."""
    services = services if services is not None else [service(1)]
    lines = [f"ST*278*{control}*005010X217~", bht,
             "HL*1**20*1~", f"NM1*X3*2*LONE STAR HEALTH PLAN*****PI*{payer}~",
             "HL*2*1*21*1~", f"NM1*1P*1*WATSON*SUSAN****XX*{requester_npi}~",
             "HL*3*2*22*1~", f"NM1*IL*1*SMITH*JOE****MI*{member}~", *([subscriber_extra] if subscriber_extra else [])]
    hl, parent = 4, 3
    if dependent:
        lines += ["HL*4*3*23*1~", "NM1*QC*1*SMITH*ANN~", "DMG*D8*20150101*F~"]
        hl, parent = 5, 4
    ev = hl
    lines += [f"HL*{ev}*{parent}*EV*1~", "TRN*1*EVT1*9012345678~", event_um, *([hi] if hi else []),
              *([event_dates] if event_dates else []), *([event_providers] if event_providers else [])]
    hl += 1
    for svc in services:
        lines += [seg.replace("{hl}", str(hl)).replace("{ev}", str(ev)) for seg in svc]
        hl += 1
    segments = "".join(lines).split("~")[:-1]
    return [*(s + "~" for s in segments), f"SE*{len(segments) + 1}*{control}~"]


def interchange(*transactions: list[str], control: str = "000000905", group: str = "17",
                gs_version: str = "005010X217", declared_sets: int | None = None) -> str:
    body = [isa(control) + "~", f"GS*HI*PROVIDERSUB*URPLATFORM*20260301*1000*{group}*X*{gs_version}~"]
    for t in transactions:
        body += t
    body += [f"GE*{declared_sets if declared_sets is not None else len(transactions)}*{group}~",
             f"IEA*1*{control}~"]
    return "\n".join(body) + "\n"
