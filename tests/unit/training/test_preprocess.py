import numpy as np
import torch
from PIL import Image
from torchvision import transforms

from trainlib.preprocess import augment_batch, build_eval_transform, preprocess_spec


def serving_transform(spec):
    """The contract's serving pipeline, written independently with the classic API."""
    return transforms.Compose(
        [
            transforms.Resize(spec["resize"], interpolation=transforms.InterpolationMode.BILINEAR),
            transforms.ToTensor(),
            transforms.Normalize(spec["mean"], spec["std"]),
        ]
    )


def test_spec_has_the_contract_shape():
    spec = preprocess_spec(96)
    assert spec["resize"] == [96, 96]
    assert spec["interpolation"] == "bilinear"
    assert len(spec["mean"]) == len(spec["std"]) == 3


def test_eval_transform_matches_the_serving_pipeline_on_a_photo():
    from skimage import data

    photo = Image.fromarray(data.chelsea()).resize((32, 32))
    spec = preprocess_spec(64)
    ours = build_eval_transform(spec)(photo)
    theirs = serving_transform(spec)(photo)
    assert ours.shape == theirs.shape == (3, 64, 64)
    # uint8 rounding between PIL and tensor resize only: well under 2/255 in pixel terms
    assert (ours - theirs).abs().mul(torch.tensor(spec["std"]).view(3, 1, 1)).max() < 2 / 255


def test_spec_records_the_native_size_or_null():
    assert preprocess_spec(128, source_size=(32, 32))["source_size"] == [32, 32]
    assert preprocess_spec(128)["source_size"] is None


def test_a_photo_is_first_brought_down_to_the_training_images_native_size():
    from skimage import data

    photo = Image.fromarray(data.chelsea())  # 451 x 300: far sharper than any CIFAR image
    spec = preprocess_spec(64, source_size=(32, 32))
    ours = build_eval_transform(spec)(photo)
    # The contract, written independently: Resize(source_size) -> Resize(resize) -> ...
    theirs = serving_transform(spec)(
        photo.resize((32, 32), Image.Resampling.BILINEAR, reducing_gap=None)
    )
    direct = build_eval_transform(preprocess_spec(64))(photo)
    assert ours.shape == theirs.shape == direct.shape == (3, 64, 64)
    std = torch.tensor(spec["std"]).view(3, 1, 1)
    assert (ours - theirs).abs().mul(std).mean() < 1 / 255
    # ... and that detour matters: the straight resize is visibly sharper (the drift it removes)
    assert (ours - direct).abs().mul(std).mean() > 4 * (ours - theirs).abs().mul(std).mean()


def test_the_native_size_step_is_a_no_op_at_that_size():
    batch = torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8)
    with_source = build_eval_transform(preprocess_spec(96, source_size=(32, 32)))(batch)
    without = build_eval_transform(preprocess_spec(96))(batch)
    assert torch.equal(with_source, without)


def test_eval_transform_gives_the_same_result_for_a_batch_and_one_image():
    rng = np.random.default_rng(0)
    batch = torch.from_numpy(rng.integers(0, 256, (3, 3, 32, 32), dtype=np.uint8))
    transform = build_eval_transform(preprocess_spec(48))
    out = transform(batch)
    assert type(out) is torch.Tensor
    assert out.shape == (3, 3, 48, 48)
    assert out.dtype == torch.float32
    assert torch.allclose(out[1], transform(batch[1]))


def test_augment_keeps_shape_and_dtype_and_only_moves_pixels():
    images = torch.zeros(64, 3, 16, 16, dtype=torch.uint8)
    images[:, :, :, :8] = 255  # left half white
    out = augment_batch(images, torch.Generator().manual_seed(0))
    assert out.shape == images.shape
    assert out.dtype == torch.uint8
    left_white = out[:, 0, 8, 3] == 255
    right_white = out[:, 0, 8, 12] == 255
    assert left_white.any()  # unflipped images kept
    assert right_white.any()  # flipped images exist
    assert not torch.equal(out, images)
