"""ReviewService over gRPC."""

from __future__ import annotations

import datetime as dt
import json

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from ur.common.v1 import types_pb2
from ur.review.v1 import review_pb2, review_pb2_grpc

from services.common.clock import ensure_utc
from services.common.grpc_errors import translate_errors
from services.common.proto_enums import to_number
from services.review.service_layer.handlers import ReviewHandlers

LOB = types_pb2.LineOfBusiness.DESCRIPTOR
URGENCY = types_pb2.Urgency.DESCRIPTOR
OUTCOME = types_pb2.LineOutcome.DESCRIPTOR


def _ts(value: dt.datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(ensure_utc(value))
    return ts


class ReviewServicer(review_pb2_grpc.ReviewServiceServicer):
    def __init__(self, handlers: ReviewHandlers) -> None:
        self._handlers = handlers

    @translate_errors
    def GetDetermination(self, request: review_pb2.GetDeterminationRequest,  # noqa: N802
                         context: grpc.ServicerContext) -> review_pb2.GetDeterminationResponse:
        return review_pb2.GetDeterminationResponse(determination=self._handlers.determination(request.request_id))

    @translate_errors
    def ListReviewQueue(self, request: review_pb2.ListReviewQueueRequest,  # noqa: N802
                        context: grpc.ServicerContext) -> review_pb2.ListReviewQueueResponse:
        rows, next_token, total = self._handlers.queue(request.page_size, request.page_token)
        response = review_pb2.ListReviewQueueResponse(next_page_token=next_token, total=total)
        for row in rows:
            response.tasks.add(
                task_id=row["task_id"], request_id=row["request_id"], line_number=row["line_number"],
                procedure_code=row["procedure_code"], member_state=row["member_state"],
                line_of_business=to_number(LOB, row["line_of_business"]),  # type: ignore[arg-type]
                urgency=to_number(URGENCY, row["urgency"]),  # type: ignore[arg-type]
                outcome=to_number(OUTCOME, row["outcome"]),  # type: ignore[arg-type]
                reasons=json.loads(row["reasons"]), created_at=_ts(row["created_at"]), due_at=_ts(row["due_at"]),
                status=row["status"])
        return response
