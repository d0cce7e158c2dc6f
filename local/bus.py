"""A local EventBridge: rules with event patterns, delivering to the same Lambda handlers.

Delivery is asynchronous and at least once, as for Lambda targets: one worker thread, each
event tried up to three times; every delivery is journalled in ``events.jsonl``.
"""

from __future__ import annotations

import importlib
import json
import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from local.events import matches

log = logging.getLogger("local.bus")
_STOP = object()


@dataclass
class Rule:
    name: str
    pattern: dict[str, Any]
    target: str  # "module:function", a Lambda handler
    input: str | None = None  # a target's constant Input: replaces the event, as in EventBridge


@dataclass
class LambdaContext:
    """The attributes Lambda's context object has that handlers and Powertools read."""

    function_name: str
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = ""
    log_group_name: str = "/aws/lambda/local"
    log_stream_name: str = "local"

    def get_remaining_time_in_millis(self) -> int:
        return 900_000


def resolve(target: str) -> Callable[[dict[str, Any], Any], Any]:
    module, _, function = target.partition(":")
    return getattr(importlib.import_module(module), function)


class EventBus:
    def __init__(self, rules: list[Rule], journal: Path, attempts: int = 3) -> None:
        self.rules, self.journal, self.attempts = rules, journal, attempts
        self._queue: queue.Queue[Any] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._busy = threading.Event()
        journal.parent.mkdir(parents=True, exist_ok=True)

    def put(self, event: dict[str, Any]) -> None:
        self._queue.put(event)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._work, name="local-event-bus", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10) -> None:
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join(timeout)

    def idle(self) -> bool:
        return self._queue.empty() and not self._busy.is_set()

    def _work(self) -> None:
        while (event := self._queue.get()) is not _STOP:
            self._busy.set()
            try:
                for rule in self.rules:
                    if matches(rule.pattern, event):
                        self._deliver(rule, event)
            finally:
                self._busy.clear()

    def _deliver(self, rule: Rule, event: dict[str, Any]) -> None:
        outcome = "failed"
        for attempt in range(1, self.attempts + 1):
            try:
                payload = json.loads(rule.input) if rule.input is not None else event
                resolve(rule.target)(payload, LambdaContext(function_name=rule.name))
                outcome = "delivered"
                break
            except Exception:
                log.exception("rule %s: handler failed (attempt %d)", rule.name, attempt)
                time.sleep(0.2 * attempt)
        record = {"rule": rule.name, "outcome": outcome, "event": event}
        with self.journal.open("a") as journal:
            journal.write(json.dumps(record) + "\n")


class Schedule:
    """A local EventBridge schedule: every ``interval_s`` it puts a ``Scheduled Event``."""

    def __init__(self, bus: EventBus, rule_arn: str, interval_s: float) -> None:
        self.bus, self.rule_arn, self.interval_s = bus, rule_arn, interval_s
        self._stop = threading.Event()

    def start(self) -> None:
        threading.Thread(target=self._tick, name="local-schedule", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    def _tick(self) -> None:
        from local.events import scheduled_event

        while not self._stop.wait(self.interval_s):
            self.bus.put(scheduled_event(self.rule_arn))
