"""Cold start and warm per-request cost of the API Lambda against FastAPI + Mangum baselines.

Cold: median over fresh processes of imports + app construction + the first POST /predict
through the Lambda handler (an HTTP API v2 event carrying a 3 KB PNG), the endpoint answered
by botocore's Stubber on a real sagemaker-runtime client. Warm: median of single requests
after that first one.

Two baselines, measured in the same run:
  hello+endpoint  FastAPI + Mangum hello-world whose POST /predict forwards the body to the same
                  stubbed endpoint (boto3 import, client creation, the call): the cost any
                  /predict must pay, so the ratio isolates what this API adds.
  hello           bare FastAPI + Mangum hello-world, POST of the same body, no endpoint call.
Targets: cold <= 1.25x, warm <= 1.5x.

    .venv/bin/python bench/api_cold_start.py [--runs 9] [--requests 400]
"""

import argparse
import base64
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = ("api", "hello+endpoint", "hello")
COLD_TARGET, WARM_TARGET = 1.25, 1.5
ANSWER = {
    "predictions": [{"label": "apple", "index": 0, "probability": 0.9}],
    "model": {"version": "bench", "training_job_name": "bench", "architecture": "resnet34"},
}


def png_of_about(size_bytes: int) -> bytes:
    """A valid PNG of roughly ``size_bytes`` (incompressible pixels), built without Pillow."""
    side = max(4, int((size_bytes / 3) ** 0.5))
    rows = b"".join(b"\x00" + os.urandom(side * 3) for _ in range(side))

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return len(data).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big")

    header = side.to_bytes(4, "big") * 2 + bytes([8, 2, 0, 0, 0])
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def http_v2_event(body: bytes) -> dict[str, Any]:
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": "/predict",
        "rawQueryString": "",
        "headers": {"content-type": "application/json", "host": "api.example.com"},
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "bench",
            "domainName": "api.example.com",
            "http": {
                "method": "POST",
                "path": "/predict",
                "protocol": "HTTP/1.1",
                "sourceIp": "192.0.2.1",
                "userAgent": "bench",
            },
            "requestId": "bench-request",
            "routeKey": "$default",
            "stage": "$default",
            "time": "28/Nov/2026:03:05:12 +0000",
            "timeEpoch": 1795835112000,
        },
        "body": body.decode(),
        "isBase64Encoded": False,
    }


# --- child process: one variant, one fresh interpreter -------------------------------------


class Context:
    function_name = "bench"
    aws_request_id = "bench"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench"

    def get_remaining_time_in_millis(self) -> int:
        return 29_000


def stubbed_runtime() -> tuple[Any, Any]:
    import boto3
    from botocore.stub import Stubber

    client = boto3.client("sagemaker-runtime", region_name="us-east-1")
    stubber = Stubber(client)
    stubber.activate()
    return client, stubber


def queue_answer(stubber: Any) -> None:
    from botocore.response import StreamingBody

    raw = json.dumps(ANSWER).encode()
    stubber.add_response("invoke_endpoint", {"Body": StreamingBody(io.BytesIO(raw), len(raw))})


def build_api() -> tuple[Any, Any]:
    for part in ("functions", "training", "."):
        sys.path.insert(0, str(ROOT / part))
    from retraining.deps import Deps, set_deps, unavailable
    from retraining.settings import Settings
    from retraining.stores.memory import InMemoryRunStore

    client, stubber = stubbed_runtime()
    set_deps(
        Deps(
            settings_factory=Settings,
            sagemaker_factory=unavailable("sagemaker"),
            sagemaker_runtime_factory=lambda: client,
            store_factory=InMemoryRunStore,
        )
    )
    import api.app

    return api.app.handler, stubber


def build_hello(with_endpoint: bool) -> tuple[Any, Any]:
    from fastapi import FastAPI, Request
    from mangum import Mangum

    client, stubber = stubbed_runtime() if with_endpoint else (None, None)
    app = FastAPI()

    @app.post("/predict")
    async def predict(request: Request) -> dict[str, Any]:
        body = await request.body()
        if client is None:
            return {"hello": "world"}
        answer = client.invoke_endpoint(
            EndpointName="bench", ContentType="application/json", Body=body
        )
        return json.loads(answer["Body"].read())

    return Mangum(app, lifespan="off"), stubber


def child(variant: str, event_file: str, requests: int, out_file: str) -> None:
    event = json.loads(Path(event_file).read_text())
    started = time.perf_counter()
    if variant == "api":
        handler, stubber = build_api()
    else:
        handler, stubber = build_hello(with_endpoint=variant == "hello+endpoint")
    if stubber is not None:
        queue_answer(stubber)
    first = handler(event, Context())
    cold_ms = (time.perf_counter() - started) * 1000
    assert first["statusCode"] == 200, first
    warm: list[float] = []
    for _ in range(requests):
        if stubber is not None:
            queue_answer(stubber)  # outside the timed part
        tick = time.perf_counter()
        response = handler(event, Context())
        warm.append((time.perf_counter() - tick) * 1000)
        assert response["statusCode"] == 200
    Path(out_file).write_text(json.dumps({"cold_ms": cold_ms, "warm_ms": warm}))


# --- parent: fresh processes, interleaved ----------------------------------------------------


def run_child(variant: str, event_file: str, requests: int) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as out:
        out_file = out.name
    env = dict(os.environ, POWERTOOLS_METRICS_NAMESPACE="Bench", AWS_DEFAULT_REGION="us-east-1")
    env.setdefault("AWS_ACCESS_KEY_ID", "bench")
    env.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    # Logs and EMF lines go to stdout as in Lambda; discard them, keep the measurement.
    subprocess.run(
        [sys.executable, __file__, "--child", variant, event_file, str(requests), out_file],
        stdout=subprocess.DEVNULL,
        check=True,
        env=env,
        cwd=ROOT,
    )
    result = json.loads(Path(out_file).read_text())
    os.unlink(out_file)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9, help="fresh processes per variant")
    parser.add_argument("--requests", type=int, default=400, help="warm requests per process")
    args = parser.parse_args()

    png = png_of_about(3 * 1024)
    body = json.dumps({"image": base64.b64encode(png).decode(), "top_k": 5}).encode()
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(http_v2_event(body), handle)
        event_file = handle.name

    cold: dict[str, list[float]] = {v: [] for v in VARIANTS}
    warm: dict[str, list[float]] = {v: [] for v in VARIANTS}
    for _ in range(args.runs):
        for variant in VARIANTS:  # interleaved, so load changes hit every variant alike
            result = run_child(variant, event_file, args.requests)
            cold[variant].append(result["cold_ms"])
            warm[variant].append(statistics.median(result["warm_ms"]))
    os.unlink(event_file)

    cold_med = {v: statistics.median(cold[v]) for v in VARIANTS}
    warm_med = {v: statistics.median(warm[v]) for v in VARIANTS}
    print(
        f"PNG {len(png)} bytes; {args.runs} fresh processes per variant; "
        f"{args.requests} warm requests each"
    )
    print(f"{'variant':16} {'cold ms':>9} {'warm ms':>9}")
    for v in VARIANTS:
        print(f"{v:16} {cold_med[v]:9.1f} {warm_med[v]:9.3f}")
    for base in ("hello+endpoint", "hello"):
        cold_ratio = cold_med["api"] / cold_med[base]
        warm_ratio = warm_med["api"] / warm_med[base]
        print(
            f"api vs {base:15} cold {cold_ratio:5.2f}x (target <= {COLD_TARGET}: "
            f"{'met' if cold_ratio <= COLD_TARGET else 'MISSED'})  "
            f"warm {warm_ratio:5.2f}x (target <= {WARM_TARGET}: "
            f"{'met' if warm_ratio <= WARM_TARGET else 'MISSED'})"
        )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5])
    else:
        main()
