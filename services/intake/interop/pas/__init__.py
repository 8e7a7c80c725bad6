"""Da Vinci PAS 2.2.1 (FHIR R4) translations: the public surface a ``Claim/$submit`` and
``Claim/$inquire`` door needs."""

from services.intake.interop.pas.guard import DEFAULT_LIMITS, Limits
from services.intake.interop.pas.inquiry import InquiryQuery, parse_inquiry
from services.intake.interop.pas.outcome import Problem, operation_outcome
from services.intake.interop.pas.request import pas_request_to_command
from services.intake.interop.pas.response import pas_error_bundle, pas_response_bundle

__all__ = ["DEFAULT_LIMITS", "InquiryQuery", "Limits", "Problem", "operation_outcome", "parse_inquiry",
           "pas_error_bundle", "pas_request_to_command", "pas_response_bundle"]
