"""CIFAR-100 -> the training channels, in a local folder or under an S3 prefix.

    python prepare_data.py --output data/                      # cifar-100-python layout
    python prepare_data.py --output s3://bucket/cifar100 --layout imagefolder

Writes ``<output>/train`` and ``<output>/test``: with ``--layout cifar`` each holds
``cifar-100-python/`` (the official pickles: ``train`` + ``meta``, ``test`` + ``meta``); with
``--layout imagefolder`` each holds ``<class name>/<index>.png``. The dataset comes from
torchvision's download, or from ``--source`` (an existing ``cifar-100-python`` folder).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from trainlib.config import _Parser
from trainlib.data import CIFAR_DIR, load_cifar
from trainlib.errors import InputError
from trainlib.layouts import write_image_folder

SPLITS = ("train", "test")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="prepare_data.py",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        allow_abbrev=False,
    )
    p.add_argument("--output", required=True, help="local folder or s3://bucket/prefix")
    p.add_argument(
        "--layout",
        choices=("cifar", "imagefolder"),
        default="cifar",
        help="channel layout to write",
    )
    p.add_argument(
        "--source",
        default=None,
        help="an existing cifar-100-python folder (or its parent); skips the download",
    )
    p.add_argument(
        "--download-dir",
        default=str(Path.home() / ".cache" / "cifar100"),
        help="where torchvision downloads and unpacks CIFAR-100",
    )
    return p


def download_cifar100(download_dir: Path) -> Path:
    """torchvision's CIFAR-100 download (checksummed); returns the cifar-100-python folder."""
    from torchvision.datasets import CIFAR100

    try:
        for train in (True, False):
            CIFAR100(root=str(download_dir), train=train, download=True)
    except Exception as e:  # offline, DNS, HTTP errors, a bad checksum: one line for all of them
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise InputError(
            f"could not download CIFAR-100 with torchvision ({type(e).__name__}: {reason})"
        ) from None
    return download_dir / CIFAR_DIR


def find_source(source: Path) -> Path:
    root = source / CIFAR_DIR if (source / CIFAR_DIR).is_dir() else source
    missing = [name for name in (*SPLITS, "meta") if not (root / name).is_file()]
    if missing:
        raise InputError(f"{root} is not a cifar-100-python folder (missing {', '.join(missing)})")
    return root


def write_channels(root: Path, out: Path, layout: str) -> list[Path]:
    """``out/train`` and ``out/test`` in the chosen layout; returns the files written."""
    for split in SPLITS:
        channel = out / split
        if layout == "cifar":
            target = channel / CIFAR_DIR
            target.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(root / split, target / split)  # byte-identical official files
            shutil.copyfile(root / "meta", target / "meta")
        else:
            data = load_cifar(root, split)
            images = data.images.permute(0, 2, 3, 1).numpy()
            write_image_folder(channel, images, data.labels.tolist(), data.classes)
    return sorted(p for p in out.rglob("*") if p.is_file())


def upload(local: Path, s3_url: str, client=None) -> int:
    """Copy the tree under ``local`` to ``s3://bucket/prefix``; returns the object count."""
    import boto3
    from boto3.exceptions import Boto3Error
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, _, prefix = s3_url.removeprefix("s3://").partition("/")
    if not bucket:
        raise InputError(f"{s3_url} names no bucket")
    client = client or boto3.client("s3")
    files = sorted(p for p in local.rglob("*") if p.is_file())
    try:
        for path in files:
            key = "/".join(
                part for part in (prefix.strip("/"), path.relative_to(local).as_posix()) if part
            )
            client.upload_file(str(path), bucket, key)
    # upload_file wraps a ClientError (no bucket, access denied) in boto3's S3UploadFailedError.
    except (BotoCoreError, ClientError, Boto3Error) as e:
        raise InputError(f"upload to {s3_url} failed: {str(e).splitlines()[0]}") from None
    return len(files)


def prepare(
    output: str, layout: str, source: Path | None, download_dir: Path, s3_client=None
) -> str:
    root = find_source(source) if source else download_cifar100(download_dir)
    if not output.startswith("s3://"):
        files = write_channels(root, Path(output), layout)
        return f"wrote {len(files)} files ({layout} layout) under {output}/{{train,test}}"
    with tempfile.TemporaryDirectory() as staging:
        write_channels(root, Path(staging), layout)
        count = upload(Path(staging), output, s3_client)
    return f"uploaded {count} objects ({layout} layout) to {output.rstrip('/')}/{{train,test}}"


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        print(
            prepare(
                args.output,
                args.layout,
                Path(args.source) if args.source else None,
                Path(args.download_dir),
            ),
            flush=True,
        )
    except InputError as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
