"""Structured logs and CloudWatch metrics (EMF) for the API.

Powertools Logger writes JSON lines with the API Gateway request id as correlation id;
metrics are Embedded Metric Format lines, in the shape Powertools Metrics serialises, that
CloudWatch turns into metrics with no API call. Each line is printed when it is recorded, so
nothing waits for a flush. The Tracer is left out on purpose: it imports the X-Ray SDK even
when disabled (~290 ms of cold start).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.metrics.functions import is_metrics_disabled

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME", "cifar100-api")
NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "Cifar100")
# POWERTOOLS_METRICS_DISABLED / POWERTOOLS_DEV, read once: the environment of a Lambda
# container does not change.
METRICS_DISABLED = is_metrics_disabled()

logger = Logger(service=SERVICE)

_AWS_PREFIX = '{"_aws":{'

#: Called as ``listener(top_probability, timestamp)`` (seconds since the epoch) per prediction.
PredictionListener = Callable[[float, float], None]
# A tuple replaced on change (copy on write): count_prediction reads it without a lock or a copy.
_listeners: tuple[PredictionListener, ...] = ()
_listeners_lock = threading.Lock()  # for the writers only


def add_prediction_listener(listener: PredictionListener) -> None:
    """Call ``listener(top_probability, timestamp)`` after every prediction that has a top-1
    probability, whether or not EMF lines are printed (the local stack feeds its alarm this
    way). A listener runs on the request's thread and should return at once; its errors are
    logged, never answered."""
    global _listeners
    with _listeners_lock:
        _listeners = (*_listeners, listener)


def remove_prediction_listener(listener: PredictionListener) -> None:
    """Stop calling ``listener`` (one registration of it; unknown listeners are ignored)."""
    global _listeners
    with _listeners_lock:
        listeners = list(_listeners)
        if listener in listeners:
            listeners.remove(listener)
            _listeners = tuple(listeners)


def _prediction_line_parts() -> tuple[str, str, str]:
    """One prediction's EMF line as Powertools serialises it (namespace, the service dimension,
    units), encoded once and split around the per-request timestamp: the head, then the tail
    with TopProbability declared and the tail without it (a prediction with no top-1
    probability). The per-request values are appended after the tail."""
    template = Metrics(namespace=NAMESPACE, service=SERVICE)
    template.add_metric(name="Predictions", unit=MetricUnit.Count, value=1)
    template.add_metric(name="PredictLatency", unit=MetricUnit.Milliseconds, value=0)
    template.add_metric(name="EndpointLatency", unit=MetricUnit.Milliseconds, value=0)
    template.add_metric(name="TopProbability", unit=MetricUnit.NoUnit, value=0)
    line: dict[str, Any] = dict(template.serialize_metric_set())
    template.clear_metrics()
    del line["_aws"]["Timestamp"], line["PredictLatency"], line["EndpointLatency"]
    del line["TopProbability"]
    with_top = json.dumps(line, separators=(",", ":"))
    [directive] = line["_aws"]["CloudWatchMetrics"]
    directive["Metrics"] = [m for m in directive["Metrics"] if m["Name"] != "TopProbability"]
    without_top = json.dumps(line, separators=(",", ":"))
    if not (with_top.startswith(_AWS_PREFIX) and without_top.startswith(_AWS_PREFIX)):
        # key order is Powertools'; check, don't assume
        raise RuntimeError(f"unexpected EMF layout: {with_top[:80]}")
    cut = len(_AWS_PREFIX)
    return _AWS_PREFIX + '"Timestamp":', "," + with_top[cut:-1], "," + without_top[cut:-1]


_LINE_HEAD, _LINE_TAIL_TOP, _LINE_TAIL = _prediction_line_parts()


def count_prediction(
    latency_ms: float, endpoint_ms: float, top_probability: float | None = None
) -> None:
    """Print this prediction's EMF line: Predictions, PredictLatency, EndpointLatency (ms) and
    TopProbability (unit None: the answer's top-1 probability, so that an alarm on its
    Average watches the model's confidence); then tell the prediction listeners.

    A ``top_probability`` that is None or not in [0, 1] (NaN included) is no data point: the
    line then has no TopProbability, as Powertools would write it without that metric.
    Only the numbers are encoded per request: Powertools' add_metric x4 + flush cost some 30
    times as much for the same line (bench/api_cold_start.py measures the whole request).
    """
    if top_probability is not None and not 0.0 <= top_probability <= 1.0:
        top_probability = None
    now = time.time()
    if _listeners and top_probability is not None:
        _notify(top_probability, now)
    if METRICS_DISABLED:
        return
    if top_probability is None:
        print(
            f"{_LINE_HEAD}{int(now * 1000)}{_LINE_TAIL},"
            f'"PredictLatency":[{float(latency_ms)!r}],"EndpointLatency":[{float(endpoint_ms)!r}]}}'
        )
        return
    print(
        f"{_LINE_HEAD}{int(now * 1000)}{_LINE_TAIL_TOP},"
        f'"PredictLatency":[{float(latency_ms)!r}],"EndpointLatency":[{float(endpoint_ms)!r}],'
        f'"TopProbability":[{float(top_probability)!r}]}}'
    )


def _notify(top_probability: float, timestamp: float) -> None:
    for listener in _listeners:
        try:
            listener(top_probability, timestamp)
        except Exception:
            logger.exception("prediction listener failed")


def count_error(code: str, status_code: int) -> None:
    """One ``Errors`` data point per error response, by code and status (its own EMF line:
    dimensions apply to every metric in a line)."""
    if METRICS_DISABLED:
        return
    with single_metric(
        name="Errors", unit=MetricUnit.Count, value=1, namespace=NAMESPACE
    ) as metric:
        metric.add_dimension(name="service", value=SERVICE)
        metric.add_dimension(name="code", value=code)
        metric.add_dimension(name="status", value=str(status_code))
