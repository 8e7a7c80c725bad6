"""Clinical facts held to the fact catalog the criteria library generates (services/common/fact_catalog.py):
a number in another unit than its fact declares, a unit on a fact that is no number, and a negative
duration or count are refused at the door, each naming its field. Pure."""

from __future__ import annotations

from collections.abc import Sequence

from services.common.errors import FieldViolation
from services.common.fact_catalog import FactCatalog
from services.intake.domain.model import ClinicalFact


def unit_violations(facts: Sequence[ClinicalFact], catalog: FactCatalog) -> list[FieldViolation]:
    """Every unit and sign problem of ``facts`` (``clinical_facts[i].unit``, ``.number_value``)."""
    return [FieldViolation(f"clinical_facts[{i}].{field}", problem)
            for i, fact in enumerate(facts)
            for field, problem in catalog.problems(fact.name, fact.kind, fact.value, fact.unit)]


def one_per_field(general: Sequence[FieldViolation], by_catalog: Sequence[FieldViolation]) -> list[FieldViolation]:
    """The request's own validation (services/intake/domain/model.py, which bounds every number fact
    without knowing it) and the catalog's, one violation per field: where the catalog names a field, its
    description (which names the fact's unit) replaces the generic one, e.g. for a negative duration."""
    named = {v.field for v in by_catalog}
    return [v for v in general if v.field not in named] + list(by_catalog)
