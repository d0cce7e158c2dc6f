"""Training data for the local stack, placed in local S3: CIFAR-100 when it can be
downloaded, generated sample data when asked (``--sample-data``)."""

from __future__ import annotations

from pathlib import Path

from local.sample_data import write_sample_dataset


class DataUnavailable(RuntimeError):
    pass


def ensure_cifar100(folder: Path) -> Path:
    """The official ``cifar-100-python/{train,test,meta}`` layout under ``folder``."""
    if (folder / "cifar-100-python" / "train").is_file():
        return folder
    # training/ is an import root here as in its runtime (python -m local, pytest's pythonpath).
    from prepare_data import download_cifar100

    from trainlib.errors import InputError

    try:
        download_cifar100(folder)  # the same checksummed download as the cloud's data prep
    except InputError as error:  # no network, proxy, disk: all mean "use --sample-data"
        raise DataUnavailable(
            f"{error}.\n"
            "Run offline with generated sample data instead:  python -m local --sample-data "
            "(or: make run ARGS=--sample-data)"
        ) from error
    return folder


def ensure_sample(folder: Path) -> tuple[Path, Path]:
    if (folder / "test").is_dir():
        return folder / "train", folder / "test"
    return write_sample_dataset(folder)
