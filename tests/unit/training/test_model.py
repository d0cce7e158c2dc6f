import copy

import pytest
import torch
from torchvision.models import ResNet34_Weights

from trainlib.errors import InputError
from trainlib.model import ResNet34Classifier, build_model


def test_frozen_trunk_gets_no_gradient_and_stays_in_eval_mode():
    model = ResNet34Classifier(5, hidden_units=16)
    model.train()
    assert not model.trunk.training
    assert model.layer4.training
    assert model.head.training
    logits = model(torch.randn(2, 3, 32, 32))
    assert logits.shape == (2, 5)
    logits.sum().backward()
    assert all(p.grad is None for p in model.trunk.parameters())
    assert all(p.grad is not None for p in model.head.parameters())
    trainable = {id(p) for p in model.trainable_parameters()}
    assert trainable == {id(p) for p in [*model.layer4.parameters(), *model.head.parameters()]}


def test_frozen_trunk_statistics_do_not_move_in_training():
    model = ResNet34Classifier(3, hidden_units=8).train()
    before = model.trunk[1].running_mean.clone()
    model(torch.randn(4, 3, 32, 32) * 3 + 1)
    assert torch.equal(model.trunk[1].running_mean, before)


def test_unfrozen_backbone_trains_everything():
    model = ResNet34Classifier(3, hidden_units=8, freeze_backbone=False)
    assert len(model.trainable_parameters()) == len(list(model.parameters()))


def test_head_is_linear_relu_dropout_linear():
    head = ResNet34Classifier(7, hidden_units=32, dropout=0.3).head
    assert [type(m).__name__ for m in head] == ["Linear", "ReLU", "Dropout", "Linear"]
    assert head[0].in_features == 512
    assert head[-1].out_features == 7
    assert head[2].p == 0.3


def test_pretrained_weights_are_loaded_into_the_trunk(monkeypatch):
    from torchvision.models import resnet34

    state = resnet34().state_dict()
    state["conv1.weight"].fill_(0.125)
    monkeypatch.setattr(
        ResNet34_Weights.IMAGENET1K_V1.__class__, "get_state_dict", lambda self, **kw: state
    )
    model = build_model(4, pretrained=True, hidden_units=8, dropout=0.0, freeze_backbone=True)
    assert torch.all(model.trunk[0].weight == 0.125)


def test_unreachable_pretrained_weights_are_one_clear_line(monkeypatch, tmp_path):
    from urllib.error import URLError

    def offline(*args, **kwargs):
        raise URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # empty cache: the download is attempted
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(InputError) as info:
        build_model(4, pretrained=True, hidden_units=8, dropout=0.0, freeze_backbone=True)
    message = str(info.value)
    assert "IMAGENET1K_V1" in message
    assert "--pretrained false" in message
    assert "\n" not in message


def test_fused_trunk_computes_what_the_unfused_one_does(random_batchnorm_statistics):
    torch.manual_seed(0)
    reference = random_batchnorm_statistics(ResNet34Classifier(4, hidden_units=8, dropout=0.0))
    fused = copy.deepcopy(reference)
    trainable_before = [id(p) for p in fused.trainable_parameters()]
    fused.fuse_frozen_trunk()
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.trunk.modules())
    assert sum(isinstance(m, torch.nn.Conv2d) for m in fused.trunk.modules()) == 29
    assert [id(p) for p in fused.trainable_parameters()] == trainable_before
    x = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        expected, got = reference.trunk(x), fused.trunk(x)
    assert expected.abs().max() > 0.1  # a non-trivial activation, not all zeros
    torch.testing.assert_close(got, expected, rtol=1e-3, atol=1e-3)
    # In training mode too: the trunk stays frozen, layer4 and the head learn as before.
    reference.train(), fused.train()
    out_ref, out_fused = reference(x), fused(x)
    torch.testing.assert_close(out_fused, out_ref, rtol=1e-3, atol=1e-3)
    out_fused.sum().backward()
    assert all(p.grad is None for p in fused.trunk.parameters())
    assert all(p.grad is not None for p in fused.layer4.parameters())
    assert not fused.trunk.training


def test_fusing_is_idempotent_and_skipped_for_an_unfrozen_backbone():
    model = ResNet34Classifier(3, hidden_units=8)
    model.fuse_frozen_trunk()
    trunk = model.trunk
    model.fuse_frozen_trunk()
    assert model.trunk is trunk
    unfrozen = ResNet34Classifier(3, hidden_units=8, freeze_backbone=False)
    unfrozen.fuse_frozen_trunk()
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in unfrozen.trunk.modules())


def test_prepare_model_folds_the_frozen_trunk():
    from trainlib.loop import Runtime, prepare_model

    model = ResNet34Classifier(3, hidden_units=8)
    prepare_model(model, Runtime(torch.device("cpu"), None, False))
    assert model.trunk_fused
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.trunk.modules())
