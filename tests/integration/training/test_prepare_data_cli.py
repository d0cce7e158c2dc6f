"""prepare_data.py as a command: a synthetic source folder in, channels train_model.py reads out."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from trainlib.data import load_channel
from trainlib.layouts import write_cifar
from trainlib.synthetic import class_names, make_images

TRAINING = Path(__file__).resolve().parents[3] / "training"


def test_cli_writes_image_folder_channels_from_a_source(tmp_path):
    names = class_names(2)
    for seed, split in enumerate(("train", "test")):
        images, labels = make_images(2, 3, size=32, seed=seed)
        write_cifar(tmp_path / "source", split, images, labels, names)
    out = tmp_path / "channels"
    result = subprocess.run(
        [
            sys.executable,
            "prepare_data.py",
            "--output",
            str(out),
            "--layout",
            "imagefolder",
            "--source",
            str(tmp_path / "source" / "cifar-100-python"),  # the folder itself works too
        ],
        cwd=TRAINING,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert (
        result.stdout.strip() == f"wrote 12 files (imagefolder layout) under {out}/{{train,test}}"
    )
    assert result.stderr == ""
    train = load_channel(out / "train", "train", image_size=32)
    test = load_channel(out / "test", "test", image_size=32, classes=train.classes)
    assert (len(train), len(test)) == (6, 6)
    assert train.classes == names
    assert sorted(p.name for p in (out / "train" / "class_01").iterdir()) == [
        "000001.png",
        "000003.png",
        "000005.png",
    ]
