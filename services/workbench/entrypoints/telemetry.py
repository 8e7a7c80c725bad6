"""The workbench's HTTP requests in metrics and traces (services/common/http_telemetry.py):

    ur_workbench_http_requests_total{route, method, status}
    ur_workbench_http_request_duration_seconds{route, method}
"""

from __future__ import annotations

from services.common import http_telemetry
from services.common.http_telemetry import HttpTelemetry, route_of
from services.common.metrics import Metrics

__all__ = ["HttpMetrics", "HttpTelemetry", "route_of"]


class HttpMetrics(http_telemetry.HttpMetrics):
    """The workbench's families, in ``metrics``' registry."""

    def __init__(self, metrics: Metrics) -> None:
        super().__init__(metrics, "workbench")
