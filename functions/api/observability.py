"""Structured logs and CloudWatch metrics (EMF) for the API.

Powertools Logger writes JSON lines with the API Gateway request id as correlation id;
Metrics writes Embedded Metric Format lines that CloudWatch turns into metrics with no API
call. The Tracer is left out on purpose: it imports the X-Ray SDK even when disabled (~290 ms
of cold start).
"""

from __future__ import annotations

import os

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME", "cifar100-api")
NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "Cifar100")

logger = Logger(service=SERVICE)
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)


def count_prediction(latency_ms: float, endpoint_ms: float) -> None:
    metrics.add_metric(name="Predictions", unit=MetricUnit.Count, value=1)
    metrics.add_metric(name="PredictLatency", unit=MetricUnit.Milliseconds, value=latency_ms)
    metrics.add_metric(name="EndpointLatency", unit=MetricUnit.Milliseconds, value=endpoint_ms)


def count_error(code: str, status_code: int) -> None:
    """One ``Errors`` data point per error response, by code and status (its own EMF line:
    dimensions apply to every metric in a line)."""
    with single_metric(
        name="Errors", unit=MetricUnit.Count, value=1, namespace=NAMESPACE
    ) as metric:
        metric.add_dimension(name="service", value=SERVICE)
        metric.add_dimension(name="code", value=code)
        metric.add_dimension(name="status", value=str(status_code))


def flush_request_metrics() -> None:
    """Publish what this request recorded; a request that recorded nothing prints nothing."""
    if metrics.provider.metric_set:
        metrics.flush_metrics()
