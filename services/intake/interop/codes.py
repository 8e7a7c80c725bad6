"""Code lists shared by the X12 278 and the Da Vinci PAS translations.

PAS carries X12's own codes in FHIR codings whose systems are ``https://codesystem.x12.org/005010/<element>``,
so one table serves both doors. Sources: ASC X12 005010X217 (278 request and response TR3) element
code lists 306 (HCR01 action code), 1322 (UM02 certification type), 1338 (UM06 level of service),
1525 (UM01 request category), 1365 (UM03 service type), 901 (AAA03 reject reason), 889 (AAA04
follow-up action); CMS place of service code set; NUBC type of bill; PHDSC Source of Payment
Typology (payer type, the US Core Coverage.type binding); X12 1032 claim filing indicator.
"""

from __future__ import annotations

import datetime as dt

from ur.common.v1 import types_pb2

X12 = "https://codesystem.x12.org/005010/"
ACTION_SYSTEM = X12 + "306"
CERTIFICATION_TYPE_SYSTEM = X12 + "1322"
LEVEL_OF_SERVICE_SYSTEM = X12 + "1338"
REQUEST_CATEGORY_SYSTEM = X12 + "1525"
SERVICE_TYPE_SYSTEM = X12 + "1365"
REJECT_REASON_SYSTEM = X12 + "901"
FOLLOWUP_SYSTEM = X12 + "889"
CLAIM_FILING_SYSTEM = X12 + "1032"
POS_SYSTEM = "https://www.cms.gov/Medicare/Coding/place-of-service-codes/Place_of_Service_Code_Set"
TYPE_OF_BILL_SYSTEM = "https://www.nubc.org/CodeSystem/TypeOfBill"
SOPT_SYSTEMS = ("https://nahdo.org/sopt", "urn:oid:2.16.840.1.113883.3.221.5")

# HCR01: ur.common.v1.ActionCode number -> (X12 code, display). Pended is what a line without a
# determination yet says: it is under review.
ACTION_CODES: dict[int, tuple[str, str]] = {
    types_pb2.ACTION_CODE_CERTIFIED_IN_TOTAL: ("A1", "Certified in total"),
    types_pb2.ACTION_CODE_CERTIFIED_PARTIAL: ("A2", "Certified - partial"),
    types_pb2.ACTION_CODE_NOT_CERTIFIED: ("A3", "Not certified"),
    types_pb2.ACTION_CODE_PENDED: ("A4", "Pended"),
    types_pb2.ACTION_CODE_MODIFIED: ("A6", "Modified"),
    types_pb2.ACTION_CODE_CANCELLED: ("C", "Cancelled"),
    types_pb2.ACTION_CODE_CONTACT_PAYER: ("CT", "Contact payer"),
    types_pb2.ACTION_CODE_NO_ACTION_REQUIRED: ("NA", "No action required"),
}
CERTIFIED = frozenset({"A1", "A2", "A6"})

# UM02 certification type. Only a first request and the continuation of an ongoing stay or course
# (renewal, extension) enter through SubmitRequest; revisions, cancellations and appeals are
# requests about an existing case and have their own commands.
CERTIFICATION_TYPES = {
    "I": "initial", "R": "renewal", "S": "revised", "1": "appeal - immediate", "2": "appeal - standard",
    "3": "cancel", "4": "extension",
}
REVIEW_TYPE_OF_CERTIFICATION = {
    "I": types_pb2.REVIEW_TYPE_PROSPECTIVE,
    "R": types_pb2.REVIEW_TYPE_CONCURRENT,
    "4": types_pb2.REVIEW_TYPE_CONCURRENT,
}
# UM06 level of service: urgent and emergency requests take the expedited clock.
LEVELS_OF_SERVICE = {"03": "emergency", "E": "elective", "U": "urgent"}
EXPEDITED_LEVELS = frozenset({"03", "U"})

PLACES_OF_SERVICE = frozenset(v for v in types_pb2.PlaceOfService.values() if v)

# NUBC type of bill (facility type + bill classification, the first two digits without the leading
# zero) -> the place of service the platform reviews it as.
TYPE_OF_BILL_PLACE = {
    "11": types_pb2.PLACE_OF_SERVICE_INPATIENT_HOSPITAL,
    "12": types_pb2.PLACE_OF_SERVICE_INPATIENT_HOSPITAL,
    "13": types_pb2.PLACE_OF_SERVICE_OUTPATIENT_HOSPITAL,
    "14": types_pb2.PLACE_OF_SERVICE_INDEPENDENT_LABORATORY,
    "21": types_pb2.PLACE_OF_SERVICE_SKILLED_NURSING_FACILITY,
    "22": types_pb2.PLACE_OF_SERVICE_SKILLED_NURSING_FACILITY,
    "32": types_pb2.PLACE_OF_SERVICE_HOME,
    "33": types_pb2.PLACE_OF_SERVICE_HOME,
    "34": types_pb2.PLACE_OF_SERVICE_HOME,
    "83": types_pb2.PLACE_OF_SERVICE_AMBULATORY_SURGICAL_CENTER,
}


def place_from_type_of_bill(code: str) -> types_pb2.PlaceOfService.ValueType:
    """'0111' or '111' -> inpatient hospital; 0 when the bill type is not one the platform reviews."""
    digits = code.lstrip("0")
    unspecified = types_pb2.PLACE_OF_SERVICE_UNSPECIFIED
    return TYPE_OF_BILL_PLACE.get(digits[:2], unspecified) if len(digits) >= 2 and digits.isdigit() else unspecified


def line_of_business_from_payer_type(code: str) -> types_pb2.LineOfBusiness.ValueType:
    """Source of Payment Typology (hierarchical: '111' Medicare HMO sits under '11' Medicare managed care).

    Medicare managed care is Medicare Advantage; Medicaid in all its forms is Medicaid; private
    insurance and Blue Cross/Blue Shield are commercial; 95x is workers' compensation. Traditional
    Medicare (12x) and the rest are not lines of business the platform reviews: 0."""
    if code.startswith("11"):
        return types_pb2.LINE_OF_BUSINESS_MEDICARE_ADVANTAGE
    if code.startswith("2"):
        return types_pb2.LINE_OF_BUSINESS_MEDICAID
    if code.startswith(("5", "6")):
        return types_pb2.LINE_OF_BUSINESS_COMMERCIAL
    if code.startswith("95"):
        return types_pb2.LINE_OF_BUSINESS_WORKERS_COMP
    return types_pb2.LINE_OF_BUSINESS_UNSPECIFIED


# X12 1032 claim filing indicator (the insurance type X12 transactions carry).
CLAIM_FILING_LINE_OF_BUSINESS = {
    "16": types_pb2.LINE_OF_BUSINESS_MEDICARE_ADVANTAGE,  # HMO Medicare risk
    "MC": types_pb2.LINE_OF_BUSINESS_MEDICAID,
    "CI": types_pb2.LINE_OF_BUSINESS_COMMERCIAL,
    "BL": types_pb2.LINE_OF_BUSINESS_COMMERCIAL,
    "HM": types_pb2.LINE_OF_BUSINESS_COMMERCIAL,
    "12": types_pb2.LINE_OF_BUSINESS_COMMERCIAL,  # PPO
    "13": types_pb2.LINE_OF_BUSINESS_COMMERCIAL,  # POS
    "14": types_pb2.LINE_OF_BUSINESS_COMMERCIAL,  # EPO
    "15": types_pb2.LINE_OF_BUSINESS_COMMERCIAL,  # indemnity
    "WC": types_pb2.LINE_OF_BUSINESS_WORKERS_COMP,
}

# AAA03 reject reasons the platform sends (the 278 TR3 lists which ones each loop allows).
REJECT_REASONS = {
    "15": "Required application data missing",
    "33": "Input errors",
    "42": "Unable to respond at current time",
    "43": "Invalid/missing provider identification",
    "57": "Invalid/missing date(s) of service",
    "58": "Invalid/missing date-of-birth",
    "64": "Invalid/missing patient ID",
    "72": "Invalid/missing subscriber/insured ID",
    "75": "Subscriber/insured not found",
    "78": "Subscriber/insured not in group/plan identified",
    "79": "Invalid participant identification",
    "AF": "Invalid/missing diagnosis code(s)",
    "AG": "Invalid/missing procedure code(s)",
    "T4": "Payer name or identifier missing",
}


def age_on(born: dt.date, on: dt.date) -> int:
    """Whole years of age on a day (the ``age_years`` clinical fact both doors derive from a birth date)."""
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))
