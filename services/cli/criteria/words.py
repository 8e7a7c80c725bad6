"""The plain words (and colours) a medical director reads for line outcomes and decisions: what a
line "was" and what it "would now be" under a draft."""

from __future__ import annotations

from ur.common.v1 import types_pb2

OUTCOME = types_pb2.LineOutcome
CONDITION = types_pb2.ConditionStatus

OUTCOME_ORDER = ("meets_criteria", "meets_criteria_urgent", "no_action_required", "refer_to_nurse",
                 "pend_missing_information")
OUTCOME_LABEL = {
    "meets_criteria": "approved (meets criteria)",
    "meets_criteria_urgent": "approved as urgent",
    "no_action_required": "no authorization needed",
    "refer_to_nurse": "referred to a nurse",
    "pend_missing_information": "pended for missing information",
}
WAS = {"meets_criteria": "was approved", "meets_criteria_urgent": "was approved as urgent",
       "no_action_required": "needed no authorization", "refer_to_nurse": "was referred to a nurse",
       "pend_missing_information": "was pended"}
WOULD = {"meets_criteria": "would now be approved", "meets_criteria_urgent": "would now be approved as urgent",
         "no_action_required": "would now need no authorization",
         "refer_to_nurse": "would now be referred to a nurse",
         "pend_missing_information": "would now be pended"}
OUTCOME_STYLE = {"meets_criteria": "green", "meets_criteria_urgent": "green", "no_action_required": "green",
                 "refer_to_nurse": "yellow", "pend_missing_information": "yellow"}
STATUS_STYLE = {"met": "green", "unmet": "red", "missing": "yellow"}
ACTION_WORDS = {
    types_pb2.ACTION_CODE_CERTIFIED_IN_TOTAL: "approved",
    types_pb2.ACTION_CODE_CERTIFIED_PARTIAL: "approved in part",
    types_pb2.ACTION_CODE_NOT_CERTIFIED: "denied",
    types_pb2.ACTION_CODE_PENDED: "pended",
    types_pb2.ACTION_CODE_MODIFIED: "modified",
    types_pb2.ACTION_CODE_CANCELLED: "cancelled",
}
