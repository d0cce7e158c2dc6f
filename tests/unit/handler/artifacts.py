"""Test helpers: artifacts in the contract's format (model.pt, classes.json, metadata.json)."""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

# model_handler/ is the artifact's code/ directory: inference.py and the helper modules it
# imports by top-level name (the container puts code/ on sys.path).
HANDLER_DIR = Path(__file__).resolve().parents[3] / "model_handler"
HANDLER_MODULES = tuple(sorted(path.stem for path in HANDLER_DIR.glob("*.py")))

PHOTOS = ("rocket", "coffee", "astronaut", "chelsea", "camera")
CIFAR_MEAN = [0.5071, 0.4865, 0.4409]
CIFAR_STD = [0.2673, 0.2564, 0.2762]


class TinyNet(torch.nn.Module):
    """A few-kilobyte CNN: fast stand-in where the architecture does not matter."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.features = torch.nn.Sequential(
            torch.nn.Conv2d(3, 8, 3, padding=1),
            torch.nn.BatchNorm2d(8),
            torch.nn.ReLU(),
            torch.nn.AdaptiveAvgPool2d(1),
        )
        self.head = torch.nn.Linear(8, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.flatten(self.features(x), 1))


def write_artifact(
    model_dir: Path, module: torch.nn.Module, classes: list[str], image_size: int
) -> Path:
    """Trace ``module`` and write the artifact exactly as docs/contracts.md describes it."""
    model_dir.mkdir(parents=True, exist_ok=True)
    module.eval()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore", FutureWarning)
        traced = torch.jit.trace(module, torch.randn(1, 3, image_size, image_size))
        torch.jit.save(traced, str(model_dir / "model.pt"))
    (model_dir / "classes.json").write_text(json.dumps(classes))
    metadata = {
        "format_version": 1,
        "architecture": type(module).__name__.lower(),
        "weights_file": "model.pt",
        "weights_format": "torchscript",
        "num_classes": len(classes),
        "image_size": image_size,
        "preprocess": {
            "resize": [image_size, image_size],
            "interpolation": "bilinear",
            "mean": CIFAR_MEAN,
            "std": CIFAR_STD,
        },
        "hyperparameters": {"learning_rate": 0.01, "batch_size": 128, "epochs": 1},
        "metrics": {"test_acc": 0.01},
        "training_job_name": f"cifar100-test-{model_dir.name}-final",
        "model_version": f"cifar100-test-{model_dir.name}",
        "created_at": "2026-11-28T03:05:12Z",
        "torch_version": torch.__version__,
    }
    (model_dir / "metadata.json").write_text(json.dumps(metadata))
    return model_dir


def load(model_dir: Path):
    from model_handler import inference

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("INFERENCE_NUM_THREADS", "1")
        return inference.model_fn(str(model_dir))


def encode(array: np.ndarray, fmt: str, **save_args) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, fmt, **save_args)
    return buffer.getvalue()


def invoke(model, body, content_type: str, accept: str | None = "application/json") -> dict:
    """The toolkit's default transform: input_fn -> predict_fn -> output_fn, JSON decoded."""
    from model_handler import inference

    data = inference.input_fn(body, content_type)
    return json.loads(inference.output_fn(inference.predict_fn(data, model), accept))


def b64(data: bytes) -> str:
    import base64

    return base64.b64encode(data).decode("utf-8")


def normalised_noise(count: int, image_size: int, seed: int) -> np.ndarray:
    """Uniform-pixel images, normalised as the contract's preprocess normalises: network input."""
    pixels = np.random.default_rng(seed).random((count, 3, image_size, image_size))
    mean = np.asarray(CIFAR_MEAN).reshape(1, 3, 1, 1)
    std = np.asarray(CIFAR_STD).reshape(1, 3, 1, 1)
    return ((pixels - mean) / std).astype(np.float32)


# Colour photos of skimage.data other than PHOTOS: the int8 graphs' calibration and check
# images, so the tests' own photos stay unseen (training calibrates on validation images).
CALIBRATION_PHOTOS = ("hubble_deep_field", "immunohistochemistry", "retina", "stereo_motorcycle")


def photo_crops(count: int, image_size: int, seed: int) -> np.ndarray:
    """Random square crops of CALIBRATION_PHOTOS, resized and normalised: network input."""
    import skimage.data

    rng = np.random.default_rng(seed)
    sources = []
    for name in CALIBRATION_PHOTOS:
        image = getattr(skimage.data, name)()
        sources.append(image[0] if isinstance(image, tuple) else image)
    crops = []
    for _ in range(count):
        image = sources[rng.integers(len(sources))]
        side = int(rng.integers(image_size, min(image.shape[:2]) + 1))
        top = int(rng.integers(image.shape[0] - side + 1))
        left = int(rng.integers(image.shape[1] - side + 1))
        crop = Image.fromarray(image[top : top + side, left : left + side, :3])
        crop = crop.resize((image_size, image_size), Image.Resampling.BILINEAR)
        crops.append(np.asarray(crop, dtype=np.float32).transpose(2, 0, 1) / 255)
    mean = np.asarray(CIFAR_MEAN, dtype=np.float32).reshape(1, 3, 1, 1)
    std = np.asarray(CIFAR_STD, dtype=np.float32).reshape(1, 3, 1, 1)
    return ((np.stack(crops) - mean) / std).astype(np.float32)


def add_serving_graphs(model_dir: Path, mode: str = "int8", **guard):
    """Ship model.onnx (mode fp32) and model.int8.onnx (mode int8) beside model.pt with
    training's own writer, merged into metadata.json as the final job merges them.

    Calibrated on 64 photo crops, checked on 64 others against model.pt's own answers (so the
    check's accuracy is its agreement)."""
    from trainlib.serving_graphs import write_serving_graphs

    metadata = json.loads((model_dir / "metadata.json").read_text())
    size = metadata["image_size"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        traced = torch.jit.load(str(model_dir / "model.pt")).eval()
    calibration, check = photo_crops(64, size, seed=1), photo_crops(64, size, seed=2)
    with torch.inference_mode():
        labels = traced(torch.from_numpy(check)).argmax(1).numpy()
    graphs = write_serving_graphs(
        model_dir,
        traced,
        size,
        mode=mode,
        check_batches=lambda: [(check[i : i + 32], labels[i : i + 32]) for i in (0, 32)],
        calibration_batches=lambda: [calibration[:32], calibration[32:]],
        calibration_images=len(calibration),
        threads=1,
        **guard,
    )
    metadata.update(graphs.metadata)
    (model_dir / "metadata.json").write_text(json.dumps(metadata))
    return graphs
