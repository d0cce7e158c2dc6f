"""A local CloudWatch metric alarm: the model-confidence alarm the template declares, evaluated
the way CloudWatch evaluates a static-threshold alarm, and announcing each state change with
the ``CloudWatch Alarm State Change`` event CloudWatch sends to EventBridge.

Metric: the Average, over each ``period_s`` (periods aligned on the epoch, as CloudWatch's
are), of the values recorded; the API's ``TopProbability`` by default, which the local stack
feeds through ``api.observability``'s prediction listeners (``start`` registers ``record``).
Evaluation, after "Alarm evaluation" and "Configuring how CloudWatch alarms treat missing
data" in the CloudWatch User Guide:

* each evaluation looks at an *evaluation range* of the most recent complete periods, more than
  ``evaluation_periods`` (N); how many more CloudWatch does not document, the guide's example
  takes 5 for N = 3, hence the default N + 2;
* if the range holds at least N datapoints, the N most recent of them are evaluated, whatever
  the missing-data setting; otherwise every datapoint in the range is, and the missing ones
  are filled with the ``treat_missing_data`` value (``notBreaching`` or ``breaching``) up to N;
* ALARM if at least ``datapoints_to_alarm`` (M) of those N breach, else OK: breaching
  datapoints need not be consecutive, so M < N is an "M out of N" alarm;
* a new alarm is INSUFFICIENT_DATA ("Unchecked: Initial alarm creation") until its first
  evaluation; only a change of state sends an event.

Simplifications: periods are evaluated once complete (``settle_s`` after their end), not every
minute with a partial current period; any ``period_s`` > 0 is accepted (CloudWatch takes 10,
20, 30 or a multiple of 60) so a demo needs no minutes; only the four static-threshold
comparisons, and the ``notBreaching`` / ``breaching`` treatments of missing data (``missing``
and ``ignore`` are refused). The ``reason`` strings follow the shape of CloudWatch's, which are
prose and no contract.
"""

from __future__ import annotations

import json
import logging
import math
import operator
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from local.sagemaker.wire import ACCOUNT, REGION

log = logging.getLogger("local.alarm")

SOURCE = "aws.cloudwatch"
DETAIL_TYPE = "CloudWatch Alarm State Change"
OK, ALARM, INSUFFICIENT_DATA = "OK", "ALARM", "INSUFFICIENT_DATA"
STATISTIC = "Average"

# ComparisonOperator -> (breaches(value, threshold), the words CloudWatch's reasons use)
_COMPARISONS: dict[str, tuple[Callable[[float, float], bool], str]] = {
    "LessThanThreshold": (operator.lt, "less than"),
    "LessThanOrEqualToThreshold": (operator.le, "less than or equal to"),
    "GreaterThanThreshold": (operator.gt, "greater than"),
    "GreaterThanOrEqualToThreshold": (operator.ge, "greater than or equal to"),
}
# TreatMissingData -> (a filled-in datapoint breaches, its name in reasons)
_MISSING: dict[str, tuple[bool, str]] = {
    "notBreaching": (False, "NonBreaching"),
    "breaching": (True, "Breaching"),
}

Emit = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class Datapoint:
    """One period's statistic: ``start`` is the period's start (seconds since the epoch)."""

    start: float
    value: float
    samples: int


class LocalAlarm:
    """A CloudWatch metric alarm over values ``record``-ed with their timestamps.

    Tests call ``record`` and ``evaluate(now)`` with an injected ``clock``; the local stack
    calls ``start()`` (registers ``record`` as a prediction listener, evaluates at once as
    CloudWatch does on creation, then at every period boundary on a timer thread) and
    ``stop()``. ``emit`` receives each state-change event (the stack's ``EventBus.put``).
    """

    def __init__(
        self,
        name: str,
        *,
        threshold: float,
        emit: Emit,
        period_s: float = 60,
        evaluation_periods: int = 1,
        datapoints_to_alarm: int | None = None,
        comparison_operator: str = "LessThanThreshold",
        treat_missing_data: str = "notBreaching",
        namespace: str | None = None,
        metric_name: str = "TopProbability",
        dimensions: dict[str, str] | None = None,
        description: str = "",
        evaluation_range: int | None = None,
        clock: Callable[[], float] = time.time,
        settle_s: float = 0.1,
    ) -> None:
        if not name or len(name) > 255 or not name.isascii():
            raise ValueError("an alarm name has 1 to 255 ASCII characters")
        if not period_s > 0:
            raise ValueError("period_s must be positive")
        if evaluation_periods < 1:
            raise ValueError("evaluation_periods must be at least 1")
        m = evaluation_periods if datapoints_to_alarm is None else datapoints_to_alarm
        if not 1 <= m <= evaluation_periods:
            raise ValueError("datapoints_to_alarm must be between 1 and evaluation_periods")
        window = evaluation_periods + 2 if evaluation_range is None else evaluation_range
        if window < evaluation_periods:
            raise ValueError("evaluation_range must be at least evaluation_periods")
        if comparison_operator not in _COMPARISONS:
            raise ValueError(f"unsupported ComparisonOperator: {comparison_operator}")
        if treat_missing_data not in _MISSING:
            raise ValueError(f"unsupported TreatMissingData: {treat_missing_data}")
        if namespace is None or dimensions is None:
            # What the API writes: the Powertools namespace and its service dimension.
            from api.observability import NAMESPACE, SERVICE

            namespace = NAMESPACE if namespace is None else namespace
            dimensions = {"service": SERVICE} if dimensions is None else dimensions

        self.name = name
        self.arn = f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:{name}"
        self.threshold = float(threshold)
        self.period_s = period_s
        self.evaluation_periods = evaluation_periods
        self.datapoints_to_alarm = m
        self.evaluation_range = window
        self.comparison_operator = comparison_operator
        self.treat_missing_data = treat_missing_data
        self.namespace, self.metric_name, self.dimensions = namespace, metric_name, dimensions
        self.description = description
        self._breaches, self._words = _COMPARISONS[comparison_operator]
        self._fill_breaches, self._fill_name = _MISSING[treat_missing_data]
        self._emit, self._clock, self._settle_s = emit, clock, settle_s
        self._metric_id = str(uuid.uuid5(uuid.NAMESPACE_URL, self.arn))

        self._data_lock = threading.Lock()  # record() vs evaluate()
        self._buckets: dict[int, list[float]] = {}  # period index -> [sum, count]
        self._evaluating = threading.Lock()  # one evaluation (and its event) at a time
        self._state: dict[str, Any] = {
            "reason": "Unchecked: Initial alarm creation",
            "timestamp": _iso_ms(clock()),
            "value": INSUFFICIENT_DATA,
        }
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- feeding ---------------------------------------------------------------------------

    def record(self, value: float, timestamp: float) -> None:
        """One metric value at ``timestamp`` (seconds since the epoch): a prediction listener."""
        if not math.isfinite(value):
            return  # CloudWatch takes no NaN or infinite values
        index = math.floor(timestamp / self.period_s)
        with self._data_lock:
            bucket = self._buckets.get(index)
            if bucket is None:
                self._buckets[index] = [value, 1.0]
            else:
                bucket[0] += value
                bucket[1] += 1.0

    # -- evaluating ------------------------------------------------------------------------

    @property
    def state(self) -> str:
        return str(self._state["value"])

    @property
    def state_reason(self) -> str:
        return str(self._state["reason"])

    def datapoints(self, now: float | None = None) -> list[Datapoint]:
        """The datapoints of the evaluation range at ``now``: its complete periods that have
        values, oldest first."""
        last = math.floor((self._clock() if now is None else now) / self.period_s) - 1
        first = last - self.evaluation_range + 1
        with self._data_lock:
            for index in [i for i in self._buckets if i < first]:
                del self._buckets[index]  # out of every later range too
            return [
                Datapoint(index * self.period_s, total / count, int(count))
                for index, (total, count) in sorted(self._buckets.items())
                if index <= last
            ]

    def evaluate(self, now: float | None = None) -> dict[str, Any] | None:
        """Evaluate the alarm at ``now`` (default: the clock); on a change of state emit the
        event and return it, else return None."""
        with self._evaluating:
            now = self._clock() if now is None else now
            existing = self.datapoints(now)
            n, m = self.evaluation_periods, self.datapoints_to_alarm
            evaluated = existing[-n:]  # the N most recent, or all of them when fewer
            filled = n - len(evaluated)  # missing datapoints filled in, as few as possible
            breaching = [d for d in evaluated if self._breaches(d.value, self.threshold)]
            count = len(breaching) + (filled if self._fill_breaches else 0)
            value = ALARM if count >= m else OK
            if value == self._state["value"]:
                return None
            state = {
                "reason": self._reason(value, evaluated, breaching, filled),
                "reasonData": self._reason_data(now, evaluated),
                "timestamp": _iso_ms(now),
                "value": value,
            }
            event = self._event(now, state, self._state)
            self._state = state
            log.info(
                "alarm %s: %s -> %s", self.name, event["detail"]["previousState"]["value"], value
            )
            self._emit(event)
            return event

    def _reason(
        self, value: str, evaluated: list[Datapoint], breaching: list[Datapoint], filled: int
    ) -> str:
        n, m = self.evaluation_periods, self.datapoints_to_alarm
        if value == ALARM:
            shown, words = breaching, self._words
            minimum, transition = m, "OK -> ALARM"
        else:
            shown, words = [d for d in evaluated if d not in breaching], f"not {self._words}"
            minimum, transition = n - m + 1, "ALARM -> OK"
        tail = f"(minimum {_count(minimum, 'datapoint')} for {transition} transition)."
        treated = f"treated as [{self._fill_name}]"
        if not evaluated:
            return (
                f"Threshold Crossed: no datapoints were received for {_count(n, 'period')} and "
                f"{_count(filled, 'missing datapoint')} {_was(filled)} {treated} {tail}"
            )
        listed = ", ".join(f"{d.value!r} ({_short(d.start)})" for d in reversed(shown))
        reason = (
            f"Threshold Crossed: {len(shown)} out of the last {len(evaluated)} datapoints "
            f"[{listed}] {_was(len(shown))} {words} the threshold ({self.threshold!r})"
        )
        if filled:
            reason += f" and {_count(filled, 'missing datapoint')} {_was(filled)} {treated}"
        return f"{reason} {tail}"

    def _reason_data(self, now: float, evaluated: list[Datapoint]) -> str:
        oldest = math.floor(now / self.period_s) - self.evaluation_periods
        start = evaluated[0].start if evaluated else oldest * self.period_s
        return json.dumps(
            {
                "version": "1.0",
                "queryDate": _iso_ms(now),
                "startDate": _iso_ms(start),
                "statistic": STATISTIC,
                "period": _number(self.period_s),
                "recentDatapoints": [d.value for d in evaluated],
                "threshold": self.threshold,
            },
            separators=(",", ":"),
        )

    def _event(self, now: float, state: dict[str, Any], previous: dict[str, Any]) -> dict[str, Any]:
        """The event CloudWatch sends EventBridge (the guide's "Alarm events and EventBridge"
        single-metric example), in the envelope local.events uses."""
        return {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": DETAIL_TYPE,
            "source": SOURCE,
            "account": ACCOUNT,
            "time": datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": REGION,
            "resources": [self.arn],
            "detail": {
                "alarmName": self.name,
                "configuration": {
                    "description": self.description,
                    "metrics": [
                        {
                            "id": self._metric_id,
                            "metricStat": {
                                "metric": {
                                    "dimensions": dict(self.dimensions),
                                    "name": self.metric_name,
                                    "namespace": self.namespace,
                                },
                                "period": _number(self.period_s),
                                "stat": STATISTIC,
                            },
                            "returnData": True,
                        }
                    ],
                },
                "previousState": dict(previous),
                "state": dict(state),
            },
        }

    # -- the timer -------------------------------------------------------------------------

    def start(self) -> LocalAlarm:
        """Listen to the API's predictions, evaluate now (CloudWatch evaluates a new alarm at
        once), then on every period boundary until ``stop``."""
        from api.observability import add_prediction_listener

        if self._thread is not None:
            raise RuntimeError(f"alarm {self.name} already started")
        add_prediction_listener(self.record)
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="local-alarm", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10) -> None:
        from api.observability import remove_prediction_listener

        remove_prediction_listener(self.record)
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def __enter__(self) -> LocalAlarm:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _run(self) -> None:
        delay = 0.0
        while not self._stop.wait(delay):
            try:
                self.evaluate()
            except Exception:
                log.exception("alarm %s: evaluation failed", self.name)
            now = self._clock()
            boundary = (math.floor(now / self.period_s) + 1) * self.period_s
            delay = max(0.0, boundary - now) + self._settle_s


def _iso_ms(t: float) -> str:
    """CloudWatch's state timestamps: ``2019-10-02T17:04:40.989+0000``."""
    moment = datetime.fromtimestamp(t, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"


def _short(t: float) -> str:
    """A datapoint's time in CloudWatch's reasons: ``02/10/19 16:59:00`` (dd/mm/yy)."""
    return datetime.fromtimestamp(t, UTC).strftime("%d/%m/%y %H:%M:%S")


def _number(value: float) -> float | int:
    return int(value) if float(value).is_integer() else value


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _was(n: int) -> str:
    return "was" if n == 1 else "were"
