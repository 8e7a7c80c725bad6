"""Binds the criteria library (its sets and the vocabulary's derivations) to the durable-rules
matcher for the handlers."""

from __future__ import annotations

from services.review.adapters.criteria_loader import CriteriaLibrary
from services.review.domain.criteria import ConditionMatcher, LineEvaluation, LineFacts, evaluate
from services.review.service_layer.ports import Evaluator


class LibraryEvaluator(Evaluator):
    def __init__(self, library: CriteriaLibrary, matcher: ConditionMatcher) -> None:
        self._library = library
        self._matcher = matcher

    def evaluate(self, line: LineFacts) -> LineEvaluation | None:
        criteria = self._library.select(line)
        if criteria is None:
            return None
        return evaluate(criteria, line, self._matcher, self._library.derivations(criteria))
