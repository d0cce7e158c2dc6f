"""Happy paths through input_fn -> predict_fn -> output_fn with real photographs."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms

from tests.unit.handler.artifacts import PHOTOS, TinyNet, b64, encode, invoke, load, write_artifact

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:FutureWarning")


def reference_probabilities(model_dir, image_bytes: bytes) -> np.ndarray:
    """The contract's preprocess spelled with torchvision, on the unoptimised TorchScript file."""
    metadata = json.loads((model_dir / "metadata.json").read_text())
    spec = metadata["preprocess"]
    transform = transforms.Compose(
        [
            transforms.Resize(spec["resize"], interpolation=transforms.InterpolationMode.BILINEAR),
            transforms.ToTensor(),
            transforms.Normalize(spec["mean"], spec["std"]),
        ]
    )
    module = torch.jit.load(str(model_dir / "model.pt")).eval()
    image = Image.open(io.BytesIO(image_bytes)).convert("RGB")
    with torch.no_grad():
        return torch.softmax(module(transform(image).unsqueeze(0)), dim=1)[0].numpy()


@pytest.mark.parametrize("name", PHOTOS)
def test_original_payload_png_matches_the_training_transform(
    name, photos, resnet_model, resnet_dir
) -> None:
    image_data = encode(photos[name], "PNG")
    payload = {"image": b64(image_data)}

    response = invoke(resnet_model, json.dumps(payload), "application/json")

    expected = reference_probabilities(resnet_dir, image_data)
    order = np.argsort(-expected)[:5]
    predictions = response["predictions"]
    assert [p["index"] for p in predictions] == order.tolist()
    assert [p["label"] for p in predictions] == [f"label_{i:03d}" for i in order]
    np.testing.assert_allclose(
        [p["probability"] for p in predictions], expected[order], rtol=1e-4, atol=1e-6
    )


@pytest.mark.parametrize("name", PHOTOS)
def test_jpeg_photo_close_to_full_decode(name, photos, resnet_model, resnet_dir) -> None:
    # JPEGs are decoded at a reduced DCT scale; the answer stays close to a full decode.
    image_data = encode(photos[name], "JPEG", quality=90)

    response = invoke(resnet_model, json.dumps({"image": b64(image_data)}), "application/json")

    expected = reference_probabilities(resnet_dir, image_data)
    got = {p["index"]: p["probability"] for p in response["predictions"]}
    assert len(got) == 5
    for index, probability in got.items():
        assert probability == pytest.approx(float(expected[index]), abs=5e-3)


def test_response_carries_model_identity_and_sorted_probabilities(
    photos, resnet_model, resnet_dir
) -> None:
    metadata = json.loads((resnet_dir / "metadata.json").read_text())
    body = json.dumps({"image": b64(encode(photos["chelsea"], "JPEG"))})

    response = invoke(resnet_model, body, "application/json; charset=utf-8")

    assert response["model"] == {
        "version": metadata["model_version"],
        "training_job_name": metadata["training_job_name"],
        "architecture": metadata["architecture"],
    }
    probabilities = [p["probability"] for p in response["predictions"]]
    assert probabilities == sorted(probabilities, reverse=True)
    assert 0 < sum(probabilities) <= 1 + 1e-6


@pytest.mark.parametrize("content_type", ["image/png", "image/jpeg", "application/x-image"])
def test_raw_image_bodies_answer_like_json(content_type, photos, resnet_model) -> None:
    fmt = "JPEG" if content_type == "image/jpeg" else "PNG"
    image_data = encode(photos["coffee"], fmt)

    raw = invoke(resnet_model, image_data, content_type)
    as_json = invoke(resnet_model, json.dumps({"image": b64(image_data)}), "application/json")

    assert raw == as_json


def test_json_body_as_bytes_is_accepted(photos, tiny_model) -> None:
    body = json.dumps({"image": b64(encode(photos["rocket"], "PNG"))})
    assert invoke(tiny_model, body.encode(), "application/json") == invoke(
        tiny_model, body, "application/json"
    )


def test_batch_answers_each_instance_like_a_single_request(photos, resnet_model) -> None:
    names = ["rocket", "camera", "astronaut"]
    encoded = [b64(encode(photos[n], "PNG")) for n in names]
    body = json.dumps({"instances": [{"image": e} for e in encoded], "top_k": 3})

    response = invoke(resnet_model, body, "application/json")

    assert set(response) == {"results", "model"}
    assert len(response["results"]) == 3
    for result, image in zip(response["results"], encoded, strict=True):
        single = invoke(resnet_model, json.dumps({"image": image, "top_k": 3}), "application/json")
        assert [p["index"] for p in result["predictions"]] == [
            p["index"] for p in single["predictions"]
        ]
        np.testing.assert_allclose(
            [p["probability"] for p in result["predictions"]],
            [p["probability"] for p in single["predictions"]],
            rtol=1e-4,
        )


@pytest.mark.parametrize("top_k", [1, 7, 10])
def test_top_k_in_range(top_k, photos, tiny_model) -> None:
    body = json.dumps({"image": b64(encode(photos["chelsea"], "PNG")), "top_k": top_k})
    predictions = invoke(tiny_model, body, "application/json")["predictions"]
    assert len(predictions) == top_k
    assert len({p["index"] for p in predictions}) == top_k


def test_default_top_k_is_five(photos, tiny_model) -> None:
    body = json.dumps({"image": b64(encode(photos["chelsea"], "PNG"))})
    assert len(invoke(tiny_model, body, "application/json")["predictions"]) == 5


@pytest.fixture(scope="module")
def three_class_model(tmp_path_factory):
    torch.manual_seed(0)
    classes = ["cat", "dog", "fish"]
    return load(write_artifact(tmp_path_factory.mktemp("three"), TinyNet(3), classes, 16))


def test_default_top_k_is_capped_at_the_number_of_classes(photos, three_class_model) -> None:
    # The API forwards no top_k unless the caller gave one: the default must fit the model.
    body = json.dumps({"image": b64(encode(photos["chelsea"], "PNG"))})
    predictions = invoke(three_class_model, body, "application/json")["predictions"]
    assert sorted(p["label"] for p in predictions) == ["cat", "dog", "fish"]


def test_explicit_top_k_above_the_number_of_classes_stays_a_400(photos, three_class_model) -> None:
    from model_handler.inference import InferenceError

    body = json.dumps({"image": b64(encode(photos["chelsea"], "PNG")), "top_k": 5})
    with pytest.raises(InferenceError) as refused:
        invoke(three_class_model, body, "application/json")
    assert (refused.value.status_code, refused.value.code) == (400, "invalid_top_k")
    assert "between 1 and 3" in refused.value.detail


@pytest.mark.parametrize(
    "encoder",
    [
        pytest.param(lambda d: "data:image/png;base64," + b64(d), id="data-url"),
        pytest.param(lambda d: __import__("base64").encodebytes(d).decode(), id="line-wrapped"),
        pytest.param(lambda d: __import__("base64").urlsafe_b64encode(d).decode(), id="urlsafe"),
    ],
)
def test_common_base64_variants(encoder, photos, tiny_model) -> None:
    image_data = encode(photos["astronaut"], "PNG")
    expected = invoke(tiny_model, json.dumps({"image": b64(image_data)}), "application/json")
    got = invoke(tiny_model, json.dumps({"image": encoder(image_data)}), "application/json")
    assert got == expected


@pytest.mark.parametrize(
    "accept", [None, "", "*/*", "application/json", "text/html, application/*;q=0.8"]
)
def test_accept_headers_that_take_json(accept, photos, tiny_model) -> None:
    body = json.dumps({"image": b64(encode(photos["camera"], "PNG"))})
    assert "predictions" in invoke(tiny_model, body, "application/json", accept)


def test_cifar_sized_input(tiny_model) -> None:
    pixels = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    response = invoke(tiny_model, encode(pixels, "PNG"), "image/png")
    assert len(response["predictions"]) == 5
