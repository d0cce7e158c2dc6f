"""Property: no request, however malformed, gets a 5xx; every error has the one shape; and
only images that passed validation reach the endpoint."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.images import ALLOWED_FORMATS, sniff_format
from retraining.deps import Deps
from tests.unit.api.fakes import AnsweringClient
from tests.unit.api.support import model_answer, png_bytes

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
PREFIXES = [
    b"\x89PNG\r\n\x1a\n",
    b"\xff\xd8\xff",
    b"GIF89a",
    b"BM",
    b"RIFF\x00\x00\x00\x00WEBP",
    b"",
]
IMAGES = st.one_of(
    st.text(max_size=40),
    st.builds(
        lambda prefix, rest: base64.b64encode(prefix + rest).decode(),
        st.sampled_from(PREFIXES),
        st.binary(max_size=64),
    ),
    st.just(base64.b64encode(png_bytes(8)).decode()),
)
PREDICT_BODIES = st.one_of(
    st.fixed_dictionaries({"image": IMAGES}, optional={"top_k": JSON | st.integers(-5, 200)}),
    st.dictionaries(st.sampled_from(["image", "top_k", "x"]), JSON, max_size=3),
    JSON,
)
TUNE_BODIES = st.one_of(
    JSON,
    st.fixed_dictionaries(
        {},
        optional={
            "max_jobs": st.integers(-2, 120) | JSON,
            "max_parallel_jobs": st.integers(-2, 12),
            "epochs": st.fixed_dictionaries(
                {"min": st.integers(-1, 300), "max": st.integers(-1, 300)}
            ),
            "learning_rate": st.fixed_dictionaries(
                {"min": st.floats(-1, 2, allow_nan=False), "max": st.floats(-1, 2, allow_nan=False)}
            ),
            "batch_sizes": st.lists(st.integers(-5, 2000), max_size=10),
            "instance_type": st.sampled_from(["ml.g5.xlarge", "ml.p5.48xlarge", ""]) | JSON,
        },
    ),
)
PATHS = st.sampled_from(
    ["/predict", "/jobs", "/jobs/tune", "/jobs/r20260101000000abcd", "/health", "/x", "/jobs/%00"]
)
METHODS = st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH"])
ANSWER = json.dumps(model_answer(5)).encode()
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _check(response: Any) -> None:
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        error = response.json()["error"]
        assert isinstance(error["code"], str)
        assert error["code"]
        assert error["message"]
        assert error["request_id"] == response.headers["x-request-id"]


def _forwarded_images_are_valid(bodies: list[dict[str, Any]]) -> None:
    for body in bodies:
        data = binascii.a2b_base64(body["image"].encode(), strict_mode=True)
        assert sniff_format(data) in ALLOWED_FORMATS
        assert 1 <= body.get("top_k", 1) <= 100


def test_predict_never_5xx(client: TestClient, deps: Deps) -> None:
    with AnsweringClient(deps.sagemaker_runtime, "InvokeEndpoint", ANSWER) as endpoint:

        @FUZZ
        @given(body=PREDICT_BODIES)
        def check(body: Any) -> None:
            _check(client.post("/predict", content=json.dumps(body)))

        check()
    bodies = [json.loads(request["body"]) for request in endpoint.requests]
    _forwarded_images_are_valid(bodies)
    assert bodies, "the fuzzer never produced a valid request"


def test_tune_never_5xx(client: TestClient, deps: Deps) -> None:
    @FUZZ
    @given(body=TUNE_BODIES)
    def check(body: Any) -> None:
        response = client.post("/jobs/tune", content=json.dumps(body))
        _check(response)
        if response.status_code == 202:  # free the active slot for the next example
            from retraining.records import RunStatus

            deps.store.transition(
                response.json()["run_id"], RunStatus.FAILED, expected={RunStatus.TUNING}
            )

    check()


def test_any_method_path_and_bytes_never_5xx(client: TestClient, deps: Deps) -> None:
    with AnsweringClient(deps.sagemaker_runtime, "InvokeEndpoint", ANSWER):

        @FUZZ
        @given(
            method=METHODS,
            path=PATHS,
            body=st.binary(max_size=64),
            query=st.dictionaries(
                st.sampled_from(["limit", "cursor"]), st.text(max_size=12), max_size=2
            ),
        )
        def check(method: str, path: str, body: bytes, query: dict[str, str]) -> None:
            _check(client.request(method, path, content=body, params=query))

        check()
