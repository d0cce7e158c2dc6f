from __future__ import annotations

import time

from fastapi import APIRouter, Request, Response

from api import endpoint
from api.blocking import call_blocking
from api.dependencies import DepsDep
from api.errors import ApiError, request_id_of
from api.images import decode_image
from api.observability import count_prediction
from api.responses import error_responses
from api.schemas import PredictRequest, PredictResponse

router = APIRouter(tags=["predict"])


@router.post(
    "/predict",
    response_model=PredictResponse,
    summary="Classify one image into CIFAR-100 labels",
    responses=error_responses(400, 413, 415, 422, 429, 502, 503, 504),
)
async def predict(body: PredictRequest, request: Request, deps: DepsDep) -> Response:
    started = time.perf_counter()
    settings = deps.settings
    decode_image(body.image, settings.max_image_bytes)  # refuse bad input before paying
    endpoint_started = time.perf_counter()
    answer = await call_blocking(
        request,
        endpoint.invoke,
        deps.sagemaker_runtime,
        settings.endpoint_name,
        body.image,
        body.top_k,
    )
    endpoint_ms = (time.perf_counter() - endpoint_started) * 1000
    try:
        response = PredictResponse(
            predictions=answer["predictions"][: body.top_k],  # [:None] keeps them all
            model=answer.get("model") or {},
            request_id=request_id_of(request),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ApiError(
            502, "bad_model_response", "the model answered in an unexpected shape"
        ) from exc
    predictions = response.predictions
    count_prediction(
        (time.perf_counter() - started) * 1000,
        endpoint_ms,
        # The model answers its labels by descending probability: the first is the top-1.
        predictions[0].probability if predictions else None,
    )
    # Already validated above: answering with its JSON skips FastAPI's second validation and
    # encoding pass (response_model still documents the body in OpenAPI).
    return Response(response.model_dump_json(), media_type="application/json")
