"""Stand-ins the API tests control.

The start-run function is the real ``retraining.workflow.start_run``; what stands in is AWS:
:class:`AnsweringClient` answers one operation of a *real* botocore client (parameters still
validated against the service model, as with botocore's Stubber) and never runs dry, which
the fuzz tests and repeated ``POST /jobs/tune`` need.
"""

from __future__ import annotations

import io
import json
from typing import Any

from botocore.awsrequest import AWSResponse
from botocore.response import StreamingBody


class AnsweringClient:
    """Answer every call of ``operation`` (e.g. ``InvokeEndpoint``) with ``answer`` and record
    the serialized requests (``body`` is what AWS would receive). ``answer`` is the parsed
    response; ``bytes`` become the streaming ``Body`` of an InvokeEndpoint answer."""

    def __init__(self, client: Any, operation: str, answer: dict[str, Any] | bytes) -> None:
        self.client = client
        self.event = f"before-call.{client.meta.service_model.service_name}.{operation}"
        self.answer = answer
        self.requests: list[dict[str, Any]] = []

    def _answer(self, params: dict[str, Any], **_: Any) -> tuple[Any, dict[str, Any]]:
        self.requests.append(params)
        http = AWSResponse("https://aws.invalid", 200, {}, None)
        if isinstance(self.answer, bytes):
            body = StreamingBody(io.BytesIO(self.answer), len(self.answer))
            return http, {"Body": body, "ContentType": "application/json"}
        return http, json.loads(json.dumps(self.answer))

    def __enter__(self) -> AnsweringClient:
        self.client.meta.events.register_first(self.event, self._answer, unique_id=self.event)
        return self

    def __exit__(self, *_: object) -> None:
        self.client.meta.events.unregister(self.event, unique_id=self.event)
