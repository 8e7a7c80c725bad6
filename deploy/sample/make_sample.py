"""Generate the bundled sample data: members with coverage and a prior-authorization workload.

    .venv/bin/python deploy/sample/make_sample.py            # rewrites the three files next to this script
    .venv/bin/python deploy/sample/make_sample.py --out-dir /tmp/x

Outputs (deterministic for a given ``--seed``; the committed files come from the default seed):

``members.yaml``
    ~200 synthetic members and their coverage, loaded into intake's database at start
    (``UR_INTAKE_MEMBERS_SEED``, see ``services/intake/adapters/seed.py``).
``workload.json``
    A JSON list of ``ur.intake.v1.SubmitRequestRequest`` objects in protobuf JSON form
    (snake_case field names, enum names), each accepted by ``json_format.ParseDict``.
``workload.expected.json``
    A JSON list of strings aligned by index with ``workload.json``: what the generator meant each
    request to be (see :data:`CATEGORIES`).

Everything is synthetic. Member ids are invented; there are no names. Provider NPIs are random
numbers with a correct check digit and fictional practice names; one may coincide with a real NPI
by chance, but nothing here describes a real person or provider.

The workload is prior-authorization traffic for service dates from December 2026 to February 2027
(all prospective): lumbar spine and knee MRI, outpatient therapy visits (one to three lines),
home sleep tests and polysomnography, and surgery no criteria set covers. Its categories:

* ``meets``: the criteria clearly approve every line; ``refer``: a nurse reviews it (criteria not
  met, or no criteria set covers the code or line of business); ``missing_info``: pended for facts;
* ``invalid``: one defect intake rejects (NPI check digit, a 4-character CPT, an ICD-9 code,
  0 units, end date before start date); ``ineligible``: an unknown member or ended coverage;
* ``replay``: an earlier request resent unchanged (same idempotency key and payload).

The clinical facts and codes follow the review service's criteria library
(``services/review/criteria/*.yaml``). Unit tests in ``tests/unit/cli/test_sample_data.py`` check
that the committed files are what this script generates and that intake's rules and review's
criteria sort every request into its intended category; when the criteria change, change
:data:`PROFILES` and regenerate.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from google.protobuf import json_format
from ur.common.v1 import types_pb2
from ur.intake.v1 import intake_pb2

HERE = Path(__file__).resolve().parent
DEFAULT_SEED = 20261201

#: What the generator intends a request to be; the strings of workload.expected.json.
CATEGORIES = ("meets", "refer", "missing_info", "invalid", "ineligible", "replay")
MEETS, REFER, MISSING, INVALID, INELIGIBLE, REPLAY = CATEGORIES

#: How many requests of each category the default workload holds (250 in all).
MIX = {MEETS: 142, REFER: 50, MISSING: 20, INVALID: 15, INELIGIBLE: 13, REPLAY: 10}

SERVICE_FIRST = dt.date(2026, 12, 1)
SERVICE_LAST_START = dt.date(2027, 2, 15)
SERVICE_LAST_END = dt.date(2027, 2, 28)
#: Terminated coverage ends before this day, so every sample service date falls outside it.
TERMINATED_BEFORE = dt.date(2026, 11, 1)
#: Requests are for adults (the sleep criteria are for adults; none of the sample services is pediatric).
ADULT_BORN_BY = dt.date(2008, 11, 30)


# -- NPI ---------------------------------------------------------------------------------------------

NPI_PREFIX = "80840"  # ISO 7812 issuer prefix for US health applications (CMS NPI check-digit standard)


def npi_check_digit(first_nine: str) -> int:
    """The Luhn check digit of an NPI whose first nine digits are ``first_nine``.

    Luhn over the 14 digits ``80840`` + ``first_nine``: starting from the rightmost digit, every
    second digit is doubled (9 subtracted when the double exceeds 9), all digits are summed and the
    check digit is what brings the sum to a multiple of 10. Raises ValueError unless ``first_nine``
    is exactly nine ASCII digits.
    """
    if len(first_nine) != 9 or not (first_nine.isascii() and first_nine.isdigit()):
        raise ValueError(f"an NPI payload is nine digits, got {first_nine!r}")
    total = 0
    for position, char in enumerate(reversed(NPI_PREFIX + first_nine)):
        digit = int(char)
        if position % 2 == 0:  # the check digit will sit to the right, so these are the doubled ones
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return (10 - total % 10) % 10


def is_valid_npi(npi: str) -> bool:
    """True when ``npi`` is ten ASCII digits whose last one is the Luhn check digit of the first nine."""
    if len(npi) != 10 or not (npi.isascii() and npi.isdigit()):
        return False
    return npi_check_digit(npi[:9]) == int(npi[9])


def make_npi(rng: random.Random, entity: int) -> str:
    """A random, valid NPI; ``entity`` is the first digit (1 individual, 2 organization)."""
    first_nine = f"{entity}{rng.randrange(10**8):08d}"
    return first_nine + str(npi_check_digit(first_nine))


# -- members -----------------------------------------------------------------------------------------

LOBS = ("medicare_advantage", "medicaid", "commercial", "workers_comp")
LOB_ENUM = {
    "medicare_advantage": types_pb2.LINE_OF_BUSINESS_MEDICARE_ADVANTAGE,
    "medicaid": types_pb2.LINE_OF_BUSINESS_MEDICAID,
    "commercial": types_pb2.LINE_OF_BUSINESS_COMMERCIAL,
    "workers_comp": types_pb2.LINE_OF_BUSINESS_WORKERS_COMP,
}
MEMBER_COUNTS = {"medicare_advantage": 60, "medicaid": 50, "commercial": 55, "workers_comp": 35}
ID_PREFIX = {"medicare_advantage": "MA1", "medicaid": "MCD2", "commercial": "COM3", "workers_comp": "WC4"}
STATE_WEIGHTS = {"CA": 30, "TX": 22, "NY": 10, "FL": 10, "IL": 6, "PA": 5, "OH": 5, "GA": 4, "WA": 4, "AZ": 4}
WC_STATE_WEIGHTS = {"CA": 50, "TX": 35, "NY": 5, "FL": 4, "IL": 3, "PA": 3}
BIRTH_YEARS = {"medicare_advantage": (1938, 1960), "medicaid": (1950, 2021), "commercial": (1962, 2006),
               "workers_comp": (1962, 2004)}


@dataclass(frozen=True)
class CoverageRow:
    line_of_business: str
    plan_id: str
    state: str
    effective: dt.date
    termination: dt.date | None


@dataclass
class Member:
    member_id: str
    birth_date: dt.date
    coverages: list[CoverageRow] = field(default_factory=list)

    def active(self) -> list[CoverageRow]:
        """Coverages active throughout the sample's service dates."""
        return [c for c in self.coverages
                if c.effective <= SERVICE_FIRST and (c.termination is None or c.termination >= SERVICE_LAST_END)]

    def terminated(self) -> list[CoverageRow]:
        return [c for c in self.coverages if c.termination is not None and c.termination < TERMINATED_BEFORE]


def _weighted(rng: random.Random, weights: dict[str, int]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def _day(rng: random.Random, first: dt.date, last: dt.date) -> dt.date:
    return first + dt.timedelta(days=rng.randrange((last - first).days + 1))


def _plan_id(rng: random.Random, lob: str, state: str, effective: dt.date) -> str:
    if lob == "medicare_advantage":
        return f"H{rng.randrange(1000, 9999)}-{rng.choice((1, 2, 3, 5, 11)):03d}"
    if lob == "medicaid":
        return f"MCD-{state}-{rng.randrange(1, 8):02d}"
    if lob == "commercial":
        return f"COM-{state}-{rng.choice(('PPO', 'HMO', 'EPO'))}{rng.randrange(100, 999)}"
    return f"WC{state}{effective.year % 100:02d}-{rng.randrange(100000, 999999)}"  # the claim number


def _coverage(rng: random.Random, lob: str, state: str) -> CoverageRow:
    if lob == "medicare_advantage":
        effective = rng.choice((dt.date(2025, 1, 1), dt.date(2026, 1, 1), dt.date(2026, 1, 1)))
    elif lob == "medicaid":
        effective = _day(rng, dt.date(2023, 1, 1), dt.date(2026, 9, 1)).replace(day=1)
    elif lob == "commercial":
        effective = rng.choice((dt.date(2025, 7, 1), dt.date(2026, 1, 1), dt.date(2026, 1, 1)))
    else:  # workers' comp coverage of a claim starts on the date of injury
        effective = _day(rng, dt.date(2026, 1, 5), dt.date(2026, 10, 30))
    return CoverageRow(lob, _plan_id(rng, lob, state, effective), state, effective, None)


def make_members(rng: random.Random) -> list[Member]:
    """~200 members over the four lines of business; a few dual coverages and a few terminated."""
    members: list[Member] = []
    for lob in LOBS:
        for n in range(MEMBER_COUNTS[lob]):
            state = _weighted(rng, WC_STATE_WEIGHTS if lob == "workers_comp" else STATE_WEIGHTS)
            low, high = BIRTH_YEARS[lob]
            birth = _day(rng, dt.date(low, 1, 1), dt.date(high, 12, 31))
            member = Member(f"{ID_PREFIX[lob]}{n + 1:05d}", birth, [_coverage(rng, lob, state)])
            members.append(member)
    by_lob = {lob: [m for m in members if m.coverages[0].line_of_business == lob] for lob in LOBS}
    # Dual eligible: Medicare Advantage members who also have Medicaid in the same state.
    for member in rng.sample(by_lob["medicare_advantage"], 5):
        member.coverages.append(_coverage(rng, "medicaid", member.coverages[0].state))
    # Commercial members with an open workers' comp claim (CA/TX, where most claims are).
    ca_tx = [m for m in by_lob["commercial"] if m.coverages[0].state in ("CA", "TX")]
    for member in rng.sample(ca_tx, 4):
        member.coverages.append(_coverage(rng, "workers_comp", member.coverages[0].state))
    # Terminated coverage: every coverage of these members ended before the sample's service dates.
    single = [m for m in members if len(m.coverages) == 1]
    for member in rng.sample(single, 8):
        cov = member.coverages[0]
        end = rng.choice((dt.date(2026, 3, 31), dt.date(2026, 6, 30), dt.date(2026, 8, 31), dt.date(2026, 9, 30)))
        effective = min(cov.effective, end - dt.timedelta(days=180)).replace(day=1)
        member.coverages[0] = CoverageRow(cov.line_of_business, cov.plan_id, cov.state, effective, end)
    return members


def members_yaml(members: Sequence[Member]) -> str:
    """The seed file in the exact format intake's loader reads (quoted strings, ISO dates)."""
    out = [
        "# Synthetic members and coverage for `make run` / `make demo` (loaded by intake at start).",
        "# Generated by deploy/sample/make_sample.py -- edit the script, not this file. No real people.",
        "members:",
    ]
    for m in members:
        out += [f'  - member_id: "{m.member_id}"', f'    birth_date: "{m.birth_date.isoformat()}"', "    coverages:"]
        for c in m.coverages:
            termination = "null" if c.termination is None else f'"{c.termination.isoformat()}"'
            out += [f"      - line_of_business: {c.line_of_business}", f'        plan_id: "{c.plan_id}"',
                    f'        state: "{c.state}"', f'        effective: "{c.effective.isoformat()}"',
                    f"        termination: {termination}"]
    return "\n".join(out) + "\n"


# -- providers ---------------------------------------------------------------------------------------

ORDERING_NAMES = (
    "Valley Orthopedics", "Harbor Spine Associates", "Mesa Family Medicine", "Lakeshore Neurology",
    "Pinecrest Internal Medicine", "Riverbend Pain Management", "Summit Sports Medicine", "Bayview Primary Care",
    "Cedar Hills Physiatry", "Northgate Occupational Health", "Prairie Community Clinic", "Sunrise Geriatrics",
    "Red Rock Orthopaedic Group", "Gulf Coast Neurosurgery", "Evergreen Rehabilitation Medicine",
    "Old Mill Family Practice",
)
FACILITY_NAMES = (
    "Coastal Imaging Center", "Metro Diagnostic Radiology", "Westside Surgery Center", "St. Elsewhere Medical Center",
    "Hillcrest Outpatient Hospital", "Canyon View Imaging", "Bluebonnet Surgical Hospital", "Seaside Physical Therapy",
    "Union Square Rehabilitation", "Magnolia Home Health", "Granite Peak Sleep Lab", "Lone Star DME Supply",
)


@dataclass(frozen=True)
class Provider:
    npi: str
    name: str


def make_providers(rng: random.Random) -> tuple[list[Provider], list[Provider]]:
    ordering = [Provider(make_npi(rng, 1), name) for name in ORDERING_NAMES]
    facilities = [Provider(make_npi(rng, 2), name) for name in FACILITY_NAMES]
    return ordering, facilities


# -- clinical profiles -------------------------------------------------------------------------------

Fact = types_pb2.ClinicalFact
POS = types_pb2.PlaceOfService


def num(name: str, value: float, unit: str) -> Fact:
    return Fact(name=name, number_value=float(value), unit=unit)


def flag(name: str, value: bool) -> Fact:
    return Fact(name=name, bool_value=value)


@dataclass(frozen=True)
class Line:
    code: str
    units: int
    place_of_service: int
    span_days: int  # end date = start date + span_days (capped at the end of February 2027)


@dataclass(frozen=True)
class Clinical:
    """What a profile produced for one request: the lines, diagnoses, facts and urgency."""

    lines: list[Line]
    diagnoses: list[str]  # the first is primary
    facts: list[Fact]
    expedited: bool = False
    review_type: int = types_pb2.REVIEW_TYPE_PROSPECTIVE


@dataclass(frozen=True)
class Profile:
    """A kind of service the sample requests. ``lines_of_business[category]`` says whose coverage a
    request of that category may use; ``build(rng, category, line_of_business)`` makes its lines,
    diagnoses and facts so that the review service's criteria give that category."""

    name: str
    weights: dict[str, int]  # category -> relative weight of this profile within the category
    lines_of_business: dict[str, tuple[str, ...]]
    build: Callable[[random.Random, str, str], Clinical]


def _pick(rng: random.Random, *choices: int) -> int:
    return rng.choice(choices)


# Lumbar spine MRI: services/review/criteria/imaging-mri-lumbar-spine.yaml ----------------------------

LUMBAR_CODES = ("72148", "72149", "72158")  # MRI lumbar spine: without, with, without and with contrast
LUMBAR_DX = ("M54.50", "M54.16", "M51.16", "M48.062")
RED_FLAGS = ("suspected_cauda_equina", "suspected_cancer", "suspected_infection", "suspected_fracture",
             "progressive_neurologic_deficit")


def lumbar_mri(rng: random.Random, kind: str, lob: str = "commercial") -> Clinical:
    """Meets criteria with any red flag (cauda equina and a progressive deficit are urgent), or after
    at least six weeks of symptoms and six weeks of conservative therapy; pends when a duration is
    missing; otherwise a nurse reviews it."""
    code = rng.choices(LUMBAR_CODES, weights=(70, 10, 20))[0]
    pos = _pick(rng, POS.PLACE_OF_SERVICE_OUTPATIENT_HOSPITAL, POS.PLACE_OF_SERVICE_INDEPENDENT_CLINIC,
                POS.PLACE_OF_SERVICE_OFFICE)
    line = Line(code, 1, pos, 30)
    diagnoses = [rng.choice(LUMBAR_DX)]
    flags = dict.fromkeys(RED_FLAGS, False)
    expedited = False
    duration: float | None
    therapy: float | None
    if kind == MEETS and rng.random() < 0.18:  # a red flag: imaging regardless of duration
        red = rng.choices(RED_FLAGS, weights=(3, 2, 1, 2, 3))[0]
        flags[red] = True
        duration, therapy = float(rng.randint(0, 3)) + rng.choice((0.0, 0.5)), float(rng.randint(0, 1))
        expedited = red in ("suspected_cauda_equina", "progressive_neurologic_deficit", "suspected_infection")
    elif kind == MEETS:
        duration = float(rng.randint(6, 30))
        therapy = float(rng.randint(6, int(min(duration, 16))))
    elif kind == REFER:
        if rng.random() < 0.5:  # too early
            duration, therapy = float(rng.randint(1, 5)), float(rng.randint(0, 3))
        else:  # long-standing pain, but little conservative therapy tried
            duration, therapy = float(rng.randint(8, 40)), float(rng.randint(0, 4))
    elif kind == MISSING:
        duration = float(rng.randint(6, 20)) if rng.random() < 0.4 else None
        therapy = None if duration is not None or rng.random() < 0.5 else float(rng.randint(6, 12))
    else:
        raise ValueError(kind)
    facts = []
    if duration is not None:
        facts.append(num("symptom_duration_weeks", duration, "weeks"))
    if therapy is not None:
        facts.append(num("conservative_therapy_weeks", therapy, "weeks"))
    facts += [flag(name, value) for name, value in flags.items()]
    return Clinical([line], diagnoses, facts, expedited=expedited)


# Knee MRI: services/review/criteria/imaging-mri-knee.yaml ---------------------------------------------

def knee_mri(rng: random.Random, kind: str, lob: str) -> Clinical:
    """73721 after radiographs: meets with a locked knee (urgent), exam signs of a tear, a suspected
    occult fracture, or six weeks of symptoms and of conservative care; pends without radiographs or
    durations stated; otherwise a nurse reviews it (e.g. three weeks of pain, normal exam)."""
    injury = lob == "workers_comp" or rng.random() < 0.4
    diagnoses = [rng.choice(("S83.241A", "S83.242A", "S83.511A")) if injury
                 else rng.choice(("M25.561", "M25.562", "M23.221", "M25.461"))]
    line = Line("73721", 1, _pick(rng, POS.PLACE_OF_SERVICE_OUTPATIENT_HOSPITAL,
                                  POS.PLACE_OF_SERVICE_INDEPENDENT_CLINIC), 30)
    facts: dict[str, bool | float] = {"knee_radiographs_done": True, "locked_knee": False,
                                      "exam_positive_for_tear": False, "suspected_occult_fracture": False}
    expedited = False
    if kind == MEETS:
        reason = rng.choices(("locked", "tear", "fracture", "chronic"), weights=(1, 5, 1, 4))[0]
        if reason == "locked":
            facts["locked_knee"] = expedited = True
            facts["symptom_duration_weeks"] = float(rng.randint(0, 2))
        elif reason == "tear":
            facts["exam_positive_for_tear"] = True
            facts["symptom_duration_weeks"] = float(rng.randint(1, 8))
        elif reason == "fracture":
            facts["suspected_occult_fracture"] = True
            facts["symptom_duration_weeks"] = float(rng.randint(0, 3))
        else:
            facts["symptom_duration_weeks"] = float(rng.randint(8, 40))
            facts["conservative_therapy_weeks"] = float(rng.randint(6, 12))
    elif kind == REFER:
        if rng.random() < 0.6:  # a few weeks of pain, normal examination
            facts["symptom_duration_weeks"] = float(rng.randint(1, 5))
            facts["conservative_therapy_weeks"] = float(rng.randint(0, 3))
        else:  # an exam suggests a tear, but radiographs have not been taken
            facts.update(knee_radiographs_done=False, exam_positive_for_tear=True,
                         symptom_duration_weeks=float(rng.randint(2, 12)),
                         conservative_therapy_weeks=float(rng.randint(0, 8)))
    elif kind == MISSING:
        if rng.random() < 0.5:  # long-standing pain, conservative care not stated
            facts["symptom_duration_weeks"] = float(rng.randint(7, 30))
        else:  # radiographs and duration not stated
            del facts["knee_radiographs_done"]
    else:
        raise ValueError(kind)
    return Clinical([line], diagnoses, _facts(facts, {"symptom_duration_weeks": "weeks",
                                                      "conservative_therapy_weeks": "weeks"}), expedited=expedited)


# Outpatient PT/OT visits: services/review/criteria/pt-ot-visits.yaml ---------------------------------

THERAPY_CODES = ("97110", "97140", "97530", "97112", "97535")
THERAPY_DX = ("M17.11", "M17.12", "Z47.1", "M54.50", "M75.101", "I69.351", "R26.89", "S83.241D")


def therapy_visits(rng: random.Random, kind: str, lob: str) -> Clinical:
    """More visits of an episode of care: meets with at most 12 visits under a signed plan of care
    with a current progress report documenting improvement; a nurse reviews maintenance therapy
    without measurable improvement, 24 visits at once, or workers' comp therapy (no criteria set
    covers it there); pends when progress is not reported. Each line is one code over the visits."""
    completed = float(rng.choice((12, 12, 18, 20, 24, 30)))
    requested = float(rng.choice((6, 8, 8, 10, 12, 12)))
    facts: dict[str, bool | float] = {"visits_completed": completed, "visits_requested": requested,
                                      "plan_of_care_signed": True, "progress_report_current": True,
                                      "functional_improvement_documented": True}
    if kind == REFER and lob != "workers_comp":
        if rng.random() < 0.7:  # maintenance therapy: no measurable improvement (a nurse, never a denial)
            facts["functional_improvement_documented"] = False
        else:  # a first request well beyond the initial allowance
            requested = 24.0
            facts.update(visits_completed=0.0, visits_requested=requested)
    elif kind == MISSING:
        del facts["progress_report_current"], facts["functional_improvement_documented"]
    elif kind not in (MEETS, REFER):
        raise ValueError(kind)
    codes = ["97110", *rng.sample(THERAPY_CODES[1:], rng.choice((0, 1, 1, 2)))]
    pos = _pick(rng, POS.PLACE_OF_SERVICE_OFFICE, POS.PLACE_OF_SERVICE_OUTPATIENT_HOSPITAL)
    span = int(requested * 7 / 2)  # about two visits a week
    lines = [Line(code, int(requested) * (2 if code == "97110" else 1), pos, span) for code in codes]
    return Clinical(lines, [rng.choice(THERAPY_DX)], _facts(facts, {"visits_completed": "visits",
                                                                    "visits_requested": "visits"}))


# Sleep testing: services/review/criteria/sleep-study-home-test.yaml and sleep-study-psg.yaml ----------

SLEEP_RISK_FREE = ("significant_cardiorespiratory_disease", "neuromuscular_weakness", "hypoventilation_suspected",
                   "chronic_opioid_use", "history_of_stroke", "severe_insomnia")


def _osa_risk(rng: random.Random, at_risk: bool) -> dict[str, bool | float]:
    """Epworth score and signs; at risk: sleepy and two or three of snoring, apneas, hypertension."""
    if not at_risk:
        return {"epworth_score": float(rng.randint(4, 10)), "habitual_loud_snoring": True,
                "witnessed_apneas": False, "hypertension_diagnosed": rng.random() < 0.3}
    signs = rng.choice(((True, True, False), (True, False, True), (False, True, True), (True, True, True)))
    return {"epworth_score": float(rng.randint(11, 19)), "habitual_loud_snoring": signs[0],
            "witnessed_apneas": signs[1], "hypertension_diagnosed": signs[2]}


def home_sleep_test(rng: random.Random, kind: str, lob: str) -> Clinical:
    """Meets for an uncomplicated adult at increased risk of moderate to severe OSA; a nurse reviews
    a patient with a reason for laboratory testing, or one not at risk; pends when the complicating
    conditions are not addressed."""
    facts: dict[str, bool | float] = {**_osa_risk(rng, at_risk=kind != REFER or rng.random() < 0.6),
                                      **dict.fromkeys(SLEEP_RISK_FREE, False)}
    if kind == REFER and float(facts["epworth_score"]) > 10:  # at risk, but a home test is unreliable
        facts[rng.choice(("chronic_opioid_use", "history_of_stroke", "significant_cardiorespiratory_disease"))] = True
    elif kind == MISSING:
        for name in rng.sample(SLEEP_RISK_FREE, rng.randint(2, 4)):
            del facts[name]
    elif kind not in (MEETS, REFER):
        raise ValueError(kind)
    code = rng.choices(("G0399", "G0398", "95806", "95800"), weights=(6, 1, 2, 1))[0]
    diagnoses = [rng.choice(("G47.33", "R06.83", "G47.30"))]
    return Clinical([Line(code, 1, POS.PLACE_OF_SERVICE_HOME, 30)], diagnoses,
                    _facts(facts, {"epworth_score": "points"}))


def polysomnography(rng: random.Random, kind: str, lob: str) -> Clinical:
    """Meets when at risk of OSA with a reason to test in the laboratory (cardiorespiratory
    disease, stroke, opioids, insomnia, a failed home test); an uncomplicated patient goes to a
    nurse (who may redirect to a home test); pends when the reasons are not stated."""
    facts: dict[str, bool | float] = {**_osa_risk(rng, at_risk=True), **dict.fromkeys(SLEEP_RISK_FREE, False),
                                      "home_test_failed": False}
    if kind == MEETS:
        facts[rng.choice((*SLEEP_RISK_FREE, "home_test_failed", "home_test_failed"))] = True
    elif kind == MISSING:
        for name in (*SLEEP_RISK_FREE, "home_test_failed"):
            del facts[name]
    elif kind != REFER:
        raise ValueError(kind)
    diagnoses = [rng.choice(("G47.33", "R06.83", "G47.10"))]
    return Clinical([Line("95810", 1, _pick(rng, POS.PLACE_OF_SERVICE_INDEPENDENT_CLINIC,
                                            POS.PLACE_OF_SERVICE_OUTPATIENT_HOSPITAL), 30)],
                    diagnoses, _facts(facts, {"epworth_score": "points"}))


def _facts(values: dict[str, bool | float], units: dict[str, str]) -> list[Fact]:
    return [flag(name, value) if isinstance(value, bool) else num(name, value, units.get(name, ""))
            for name, value in values.items()]


# Services no criteria set covers: always referred to a nurse ------------------------------------------

def uncovered_surgery(rng: random.Random, kind: str, lob: str) -> Clinical:
    """Orthopedic and spine surgery no criteria set covers: always referred to a nurse."""
    if kind != REFER:
        raise ValueError(kind)
    choice = rng.randrange(5)
    if choice == 4:  # shoulder arthroscopy: rotator cuff repair with add-on procedures
        lines = [Line("29827", 1, POS.PLACE_OF_SERVICE_AMBULATORY_SURGICAL_CENTER, 45),
                 Line("29826", 1, POS.PLACE_OF_SERVICE_AMBULATORY_SURGICAL_CENTER, 45)]
        if rng.random() < 0.5:
            lines.append(Line("29824", 1, POS.PLACE_OF_SERVICE_AMBULATORY_SURGICAL_CENTER, 45))
        diagnoses = [rng.choice(("M75.121", "M75.122", "S46.011A")), "M19.011"]
        facts = [num("symptom_duration_weeks", rng.randint(8, 40), "weeks"),
                 num("conservative_therapy_weeks", rng.randint(6, 16), "weeks")]
    elif choice == 0:  # total knee arthroplasty
        lines = [Line("27447", 1, _pick(rng, POS.PLACE_OF_SERVICE_INPATIENT_HOSPITAL,
                                        POS.PLACE_OF_SERVICE_OUTPATIENT_HOSPITAL), 60)]
        diagnoses = [rng.choice(("M17.11", "M17.12", "M17.0"))]
        facts = [num("conservative_therapy_weeks", rng.randint(12, 52), "weeks"),
                 num("body_mass_index", round(rng.uniform(24, 39), 1), "kg/m2")]
    elif choice == 1:  # lumbar laminotomy with discectomy, sometimes a second interspace
        lines = [Line("63030", 1, POS.PLACE_OF_SERVICE_AMBULATORY_SURGICAL_CENTER, 45)]
        if rng.random() < 0.4:
            lines.append(Line("63035", 1, POS.PLACE_OF_SERVICE_AMBULATORY_SURGICAL_CENTER, 45))
        diagnoses = [rng.choice(("M51.16", "M48.062", "M51.17"))]
        facts = [num("symptom_duration_weeks", rng.randint(10, 40), "weeks"),
                 num("conservative_therapy_weeks", rng.randint(6, 20), "weeks")]
    elif choice == 2:  # total hip arthroplasty
        lines = [Line("27130", 1, POS.PLACE_OF_SERVICE_INPATIENT_HOSPITAL, 60)]
        diagnoses = [rng.choice(("M16.11", "M16.12"))]
        facts = [num("conservative_therapy_weeks", rng.randint(12, 52), "weeks")]
    else:  # knee arthroscopy with meniscectomy
        lines = [Line("29881", 1, POS.PLACE_OF_SERVICE_AMBULATORY_SURGICAL_CENTER, 45)]
        diagnoses = [rng.choice(("S83.241A", "S83.242A", "M23.221"))]
        facts = [num("symptom_duration_weeks", rng.randint(4, 20), "weeks")]
    return Clinical(lines, diagnoses, facts)


# The rest of the criteria library: requests built from each set's own worked examples --------------

#: Criteria sets the hand-written profiles above already exercise.
PROFILED = frozenset({"imaging-mri-lumbar-spine", "imaging-mri-knee", "pt-ot-visits", "sleep-study-home-test",
                      "sleep-study-psg"})
#: Where each service category is delivered (place of service of its lines).
CATEGORY_POS = {
    "inpatient_acute": POS.PLACE_OF_SERVICE_INPATIENT_HOSPITAL,
    "post_acute_care": POS.PLACE_OF_SERVICE_SKILLED_NURSING_FACILITY,
    "home_health": POS.PLACE_OF_SERVICE_HOME,
    "durable_medical_equipment": POS.PLACE_OF_SERVICE_HOME,
    "behavioral_health": POS.PLACE_OF_SERVICE_OUTPATIENT_HOSPITAL,
    "spine_surgery": POS.PLACE_OF_SERVICE_INPATIENT_HOSPITAL,
    "musculoskeletal_surgery": POS.PLACE_OF_SERVICE_AMBULATORY_SURGICAL_CENTER,
    "bariatric_surgery": POS.PLACE_OF_SERVICE_INPATIENT_HOSPITAL,
    "genetic_testing": POS.PLACE_OF_SERVICE_INDEPENDENT_LABORATORY,
    "advanced_imaging": POS.PLACE_OF_SERVICE_OUTPATIENT_HOSPITAL,
    "pain_management": POS.PLACE_OF_SERVICE_AMBULATORY_SURGICAL_CENTER,
}
_EXPECT = {MEETS: ("meets_criteria", "meets_criteria_urgent"), REFER: ("refer_to_nurse",),
           MISSING: ("pend_missing_information",)}
_rotation = [0]


def _library() -> Any:
    from services.review.adapters.criteria_loader import load_library  # the review service's own library

    return load_library(HERE.parents[1] / "services" / "review" / "criteria")


def _dotted(code: str) -> str:
    return code if len(code) <= 3 else f"{code[:3]}.{code[3:]}"


def library_example(rng: random.Random, kind: str, lob: str) -> Clinical:
    """A request from one of a criteria set's worked examples with the intended outcome; the sets are
    taken in turn so the sample exercises the whole library."""
    sets = [c for c in _library().current() if c.id not in PROFILED and lob in c.lines_of_business
            and any(e.expect.value in _EXPECT[kind] and e.line_of_business in (None, lob) for e in c.examples)]
    criteria = sets[_rotation[0] % len(sets)]
    _rotation[0] += 1
    example = rng.choice([e for e in criteria.examples
                          if e.expect.value in _EXPECT[kind] and e.line_of_business in (None, lob)])
    if example.diagnoses:
        diagnoses = [_dotted(d) for d in example.diagnoses]
    else:
        stems = [p.rstrip("*") for p in criteria.diagnosis_patterns if len(p.rstrip("*")) >= 3]
        diagnoses = [_dotted(stems[0])]
    units_fact = example.facts.get("requested_units", 1)
    units = int(units_fact) if isinstance(units_fact, int | float) and not isinstance(units_fact, bool) else 1
    unit = criteria.approval.unit if criteria.approval is not None else ""
    line = Line(example.procedure_code or min(criteria.service_codes), max(units, 1),
                CATEGORY_POS.get(criteria.category, POS.PLACE_OF_SERVICE_OFFICE),
                max(units - 1, 0) if unit == "days" else 30)
    facts: list[Fact] = []
    for name, value in sorted(example.facts.items()):
        if name == "requested_units":
            continue  # the line's units say it
        spec = criteria.fact(name)
        if isinstance(value, bool):
            facts.append(flag(name, value))
        elif isinstance(value, int | float):
            facts.append(num(name, value, spec.unit or ""))
        elif isinstance(value, dt.date):
            facts.append(Fact(name=name, date_value=_pb_date(value)))
        else:
            facts.append(Fact(name=name, text_value=str(value)))
    return Clinical([line], diagnoses, facts)


NOT_WC = ("medicare_advantage", "medicaid", "commercial")
_ALL = {MEETS: LOBS, REFER: LOBS, MISSING: LOBS}
PROFILES: tuple[Profile, ...] = (
    Profile("lumbar-mri", {MEETS: 45, REFER: 22, MISSING: 35}, _ALL, lumbar_mri),
    Profile("knee-mri", {MEETS: 20, REFER: 10, MISSING: 20}, _ALL, knee_mri),
    # Therapy criteria do not cover workers' comp; a workers' comp therapy request is referred.
    Profile("therapy-visits", {MEETS: 20, REFER: 12, MISSING: 25},
            {MEETS: NOT_WC, REFER: LOBS, MISSING: NOT_WC}, therapy_visits),
    Profile("home-sleep-test", {MEETS: 10, REFER: 8, MISSING: 12},
            {MEETS: NOT_WC, REFER: NOT_WC, MISSING: NOT_WC}, home_sleep_test),
    Profile("polysomnography", {MEETS: 5, REFER: 6, MISSING: 8},
            {MEETS: NOT_WC, REFER: NOT_WC, MISSING: NOT_WC}, polysomnography),
    Profile("uncovered-surgery", {REFER: 42}, _ALL, uncovered_surgery),
    Profile("criteria-library", {MEETS: 40, REFER: 25, MISSING: 30}, _ALL, library_example),
)


# -- requests ----------------------------------------------------------------------------------------

def _pb_date(day: dt.date) -> types_pb2.Date:
    return types_pb2.Date(year=day.year, month=day.month, day=day.day)


@dataclass
class Planned:
    category: str
    message: intake_pb2.SubmitRequestRequest


class Generator:
    def __init__(self, rng: random.Random, members: Sequence[Member]) -> None:
        self.rng = rng
        self.members = list(members)
        self.ordering, self.facilities = make_providers(rng)
        self.used: set[tuple[str, str]] = set()  # (member, code): no duplicate authorizations in one run

    def key(self) -> str:
        return f"sample-{uuid.UUID(int=self.rng.getrandbits(128), version=4)}"

    def profile_for(self, category: str) -> Profile:
        candidates = [p for p in PROFILES if p.weights.get(category)]
        return self.rng.choices(candidates, weights=[p.weights[category] for p in candidates])[0]

    def pick_member(self, lobs: Sequence[str]) -> tuple[Member, CoverageRow]:
        """An adult member with active coverage of one of ``lobs``."""
        options = [(m, c) for m in self.members if m.birth_date <= ADULT_BORN_BY
                   for c in m.active() if c.line_of_business in lobs]
        return self.rng.choice(options)

    def request(self, category: str, member_id: str, coverage: CoverageRow, clinical: Clinical
                ) -> intake_pb2.SubmitRequestRequest:
        rng = self.rng
        ordering = rng.choice(self.ordering)
        office = all(line.place_of_service == POS.PLACE_OF_SERVICE_OFFICE for line in clinical.lines)
        servicing = ordering if office else rng.choice(self.facilities)
        start = _day(rng, SERVICE_FIRST, SERVICE_LAST_START)
        expedited = clinical.expedited or (category != INVALID and rng.random() < 0.11)
        message = intake_pb2.SubmitRequestRequest(
            idempotency_key=self.key(),
            member_id=member_id,
            coverage=types_pb2.Coverage(line_of_business=LOB_ENUM[coverage.line_of_business],
                                        member_state=coverage.state, plan_id=coverage.plan_id),
            requesting_provider=types_pb2.Provider(npi=ordering.npi, name=ordering.name),
            servicing_provider=types_pb2.Provider(npi=servicing.npi, name=servicing.name),
            diagnoses=[types_pb2.Diagnosis(code=code, primary=i == 0) for i, code in enumerate(clinical.diagnoses)],
            review_type=clinical.review_type,  # type: ignore[arg-type]
            urgency=types_pb2.URGENCY_EXPEDITED if expedited else types_pb2.URGENCY_STANDARD,
            clinical_facts=clinical.facts,
        )
        for number, line in enumerate(clinical.lines, start=1):
            end = min(start + dt.timedelta(days=line.span_days), SERVICE_LAST_END)
            message.service_lines.add(line_number=number, procedure_code=line.code, units=line.units,
                                      start_date=_pb_date(start), end_date=_pb_date(end),
                                      place_of_service=line.place_of_service)  # type: ignore[arg-type]
        return message

    def valid(self, category: str) -> intake_pb2.SubmitRequestRequest:
        """A request of ``category`` (meets, refer or missing_info). No member gets the same code
        twice, so that review never sees a possible duplicate of an earlier authorization."""
        profile = self.profile_for(category)
        for _ in range(1000):
            member, coverage = self.pick_member(profile.lines_of_business[category])
            clinical = profile.build(self.rng, category, coverage.line_of_business)
            pairs = {(member.member_id, line.code) for line in clinical.lines}
            if not pairs & self.used:
                self.used |= pairs
                return self.request(category, member.member_id, coverage, clinical)
        raise RuntimeError(f"no member left for another {profile.name} request; add members or requests fewer")

    def ineligible(self, n: int) -> intake_pb2.SubmitRequestRequest:
        """Alternately a member nobody knows and a member whose coverage has ended."""
        clinical = lumbar_mri(self.rng, MEETS)  # the coverage, not the clinical story, is at fault
        terminated = [(m, c) for m in self.members for c in m.terminated()]
        known = {m.member_id for m in self.members}
        if n % 2 == 0:
            member, coverage = terminated[(n // 2) % len(terminated)]
            member_id = member.member_id
        else:
            member, coverage = self.rng.choice([(m, c) for m in self.members for c in m.active()])
            member_id = member.member_id[:-5] + f"{90000 + n:05d}"  # same shape, never issued
            assert member_id not in known
        return self.request(INELIGIBLE, member_id, coverage, clinical)

    def invalid(self, n: int) -> intake_pb2.SubmitRequestRequest:
        """A request that would meet criteria but has one defect intake must reject."""
        message = self.valid(MEETS)
        line = message.service_lines[0]
        defect = n % 5
        if defect == 0:  # wrong NPI check digit
            npi = message.requesting_provider.npi
            message.requesting_provider.npi = npi[:9] + str((int(npi[9]) + 1 + n % 9) % 10)
        elif defect == 1:  # CPT with a digit missing
            line.procedure_code = line.procedure_code[:4]
        elif defect == 2:  # ICD-9-style code instead of ICD-10-CM
            message.diagnoses[0].code = self.rng.choice(("54.5", "724.2", "722.10"))
        elif defect == 3:
            line.units = 0
        else:  # dates the wrong way round
            line.end_date.CopyFrom(_pb_date(dt.date(line.start_date.year, line.start_date.month,
                                                    line.start_date.day) - dt.timedelta(days=3)))
        return message


def make_workload(rng: random.Random, members: Sequence[Member]) -> list[Planned]:
    gen = Generator(rng, members)
    _rotation[0] = 0
    planned: list[Planned] = []
    for category in (MEETS, REFER, MISSING):
        planned += [Planned(category, gen.valid(category)) for _ in range(MIX[category])]
    planned += [Planned(INVALID, gen.invalid(n)) for n in range(MIX[INVALID])]
    planned += [Planned(INELIGIBLE, gen.ineligible(n)) for n in range(MIX[INELIGIBLE])]
    rng.shuffle(planned)
    # Replays resend an earlier request unchanged (same key, same payload), well after the original so
    # that even a concurrent driver has usually had its first answer by then.
    replayable = [i for i, p in enumerate(planned[: len(planned) - 40]) if p.category in (MEETS, REFER, MISSING)]
    for original in sorted(rng.sample(replayable, MIX[REPLAY]), reverse=True):
        copy = intake_pb2.SubmitRequestRequest()
        copy.CopyFrom(planned[original].message)
        at = rng.randint(original + 30, len(planned))
        planned.insert(at, Planned(REPLAY, copy))
    return planned


def to_json(message: intake_pb2.SubmitRequestRequest) -> dict[str, Any]:
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def write(out_dir: Path, seed: int = DEFAULT_SEED) -> dict[str, int]:
    """Write members.yaml, workload.json and workload.expected.json into ``out_dir``; returns the
    number of requests per category."""
    rng = random.Random(seed)
    members = make_members(rng)
    planned = make_workload(rng, members)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "members.yaml").write_text(members_yaml(members))
    (out_dir / "workload.json").write_text(json.dumps([to_json(p.message) for p in planned], indent=1) + "\n")
    (out_dir / "workload.expected.json").write_text(json.dumps([p.category for p in planned], indent=0) + "\n")
    return {c: sum(1 for p in planned if p.category == c) for c in CATEGORIES}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out-dir", type=Path, default=HERE)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    args = parser.parse_args(argv)
    counts = write(args.out_dir, args.seed)
    print(f"wrote {sum(counts.values())} requests to {args.out_dir}: "
          + ", ".join(f"{c} {n}" for c, n in counts.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
