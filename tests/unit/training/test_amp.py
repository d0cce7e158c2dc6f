"""CPU mixed precision: the --amp option, bf16 detection, the bf16 step, an fp32 artifact."""

import json

import pytest
import torch
from torch import nn

from trainlib import loop
from trainlib.artifact import build_metadata, write_artifact
from trainlib.config import parse_config
from trainlib.errors import InputError
from trainlib.loop import Runtime, cpu_has_native_bf16, prepare_model
from trainlib.model import ResNet34Classifier
from trainlib.preprocess import preprocess_spec

BF16 = Runtime(torch.device("cpu"), torch.bfloat16, True)  # what detect gives a bf16 CPU


def parse(argv):
    return parse_config(["--train", "t", "--test", "t", *argv], "train_model.py", "test", env={})


def test_amp_defaults_to_auto_and_accepts_sagemaker_quoting():
    assert parse([]).amp == "auto"
    assert parse(["--amp", '"off"']).amp == "off"
    assert parse(["--amp", "ON"]).amp == "on"
    assert "amp" not in parse(["--amp", "on"]).hyperparameters()  # metadata stays as it was


def test_unknown_amp_mode_is_one_clear_line():
    with pytest.raises(InputError, match=r"--amp.*invalid choice.*'fp8'"):
        parse(["--amp", "fp8"])


def test_cpu_runtime_follows_the_amp_mode(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(loop, "cpu_has_native_bf16", lambda: True)
    assert Runtime.detect("auto") == BF16  # bf16 runs channels_last: oneDNN's native layout
    assert Runtime.detect("off") == Runtime(torch.device("cpu"), None, False)
    assert Runtime.detect("off").precision == "fp32"
    monkeypatch.setattr(loop, "cpu_has_native_bf16", lambda: False)
    assert Runtime.detect("auto").amp_dtype is None
    assert Runtime.detect("auto").channels_last is False
    assert Runtime.detect("on") == BF16
    assert Runtime.detect("on").precision == "bfloat16 autocast"
    with pytest.raises(ValueError, match="amp must be one of"):
        Runtime.detect("fp16")


def test_bf16_detection_falls_back_to_no_when_torch_cannot_tell(monkeypatch):
    def missing():
        raise AttributeError("no such probe in this torch")

    monkeypatch.setattr(loop.platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", missing)
    assert cpu_has_native_bf16() is False
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True)
    assert cpu_has_native_bf16() is True


def _layer4_output_dtype(model: ResNet34Classifier, x: torch.Tensor) -> torch.dtype:
    seen: list[torch.dtype] = []
    handle = model.layer4.register_forward_hook(lambda m, i, out: seen.append(out.dtype))
    with BF16.autocast():
        model(x)
    handle.remove()
    return seen[0]


def test_layer4_runs_in_bf16_only_on_maps_wide_enough_to_gain():
    model = prepare_model(ResNet34Classifier(3, hidden_units=8), BF16).train()
    assert _layer4_output_dtype(model, torch.randn(2, 3, 32, 32)) == torch.float32  # 2x2 map
    assert _layer4_output_dtype(model, torch.randn(2, 3, 64, 64)) == torch.bfloat16  # 4x4 map


def test_bf16_step_trains_with_fp32_weights_and_gradients(tmp_path):
    image_size = 64  # layer4 + head in bf16 too (the 2x2 map of 32px keeps them fp32)
    torch.manual_seed(0)
    model = ResNet34Classifier(4, hidden_units=16, dropout=0.0)
    net = prepare_model(model, BF16).train()
    assert model.layer4[0].conv1.weight.is_contiguous(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.trainable_parameters(), lr=0.05, momentum=0.9)
    criterion = nn.CrossEntropyLoss()
    x, y = torch.randn(8, 3, image_size, image_size), torch.arange(8) % 4
    assert BF16.to_input(x).is_contiguous(memory_format=torch.channels_last)
    losses = []
    for _ in range(6):
        with BF16.autocast():
            loss = criterion(net(BF16.to_input(x)).float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        assert all(p.grad.dtype == torch.float32 for p in model.trainable_parameters())
    assert losses[-1] < 0.5 * losses[0], losses
    assert {p.dtype for p in model.parameters()} == {torch.float32}

    # The artifact of a bf16-trained model is plain fp32 TorchScript with unchanged metadata.
    meta = build_metadata(
        num_classes=4,
        image_size=image_size,
        preprocess=preprocess_spec(image_size),
        hyperparameters={"learning_rate": 0.05, "batch_size": 8, "epochs": 1},
        metrics={"test_acc": 0.5},
        job_name="job-1",
    )
    write_artifact(tmp_path / "model", net, ["a", "b", "c", "d"], meta, None)
    loaded = torch.jit.load(str(tmp_path / "model" / "model.pt"))
    tensors = [*loaded.parameters(), *loaded.buffers()]
    assert tensors
    assert all(t.is_contiguous() for t in tensors)  # trained channels_last, served plain NCHW
    assert {t.dtype for t in tensors if t.is_floating_point()} == {torch.float32}
    assert "BFloat16" not in str(loaded.inlined_graph)
    net.eval()
    with torch.no_grad():
        served = loaded(x)
        assert served.dtype == torch.float32
        assert torch.allclose(served, net(x), atol=1e-4)
    assert json.loads((tmp_path / "model" / "metadata.json").read_text())["hyperparameters"] == {
        "learning_rate": 0.05,
        "batch_size": 8,
        "epochs": 1,
    }
