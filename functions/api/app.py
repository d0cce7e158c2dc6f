"""The API as an ASGI app and as a Lambda handler (template Handler: ``api.app.handler``).

Configuration comes from environment variables (``retraining.settings.Settings`` for the
endpoint name, size cap, timeouts, allowed instance types; ``API_GATEWAY_BASE_PATH`` here for a
custom-domain base path mapping). No AWS client is made at import: the first request that
needs one builds it through ``retraining.deps.get_deps``.
"""

from __future__ import annotations

import os

from fastapi import FastAPI
from mangum import Mangum

from api.errors import install_error_handlers
from api.middleware import RequestContextMiddleware
from api.routers import health, jobs, models, predict
from retraining.aws import deps_from_env
from retraining.deps import set_default_deps

# The Lambda wiring, built on first use (the local stack and tests install their own).
set_default_deps(deps_from_env)

DESCRIPTION = """\
Classify images into the 100 CIFAR-100 classes with a ResNet-34 hosted on a SageMaker
endpoint, and start or inspect the retraining runs that keep that model current.

Every error answers `{"error": {"code", "message", "request_id"}}`.
"""


def create_app() -> FastAPI:
    app = FastAPI(
        title="CIFAR-100 classifier",
        version="0.1.0",
        description=DESCRIPTION,
        # Parse a body with no Content-Type as JSON: API Gateway test events and some
        # clients send none. FastAPI's strict default guards cookie-authenticated browser
        # apps against CSRF; this API takes no ambient credentials, so it has nothing to lose.
        strict_content_type=False,
    )
    install_error_handlers(app)
    app.add_middleware(RequestContextMiddleware)
    app.include_router(predict.router)
    app.include_router(jobs.router)
    app.include_router(models.router)
    app.include_router(health.router)
    return app


app = create_app()
handler = Mangum(
    app,
    lifespan="off",
    # REST API behind a custom domain with a base path mapping ("/v1"): strip it before routing.
    api_gateway_base_path=os.environ.get("API_GATEWAY_BASE_PATH", "/"),
)
