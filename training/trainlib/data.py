"""Channels in either layout -> uint8 image batches, plus the validation split.

A channel holds the official CIFAR-100 python layout (``cifar-100-python/{train,test,meta}``)
or an ImageFolder (``<class name>/<image file>``). Two ways to hold it:

- in memory (``ImageSet``, the fast path for CIFAR-size data): images are decoded once, up
  front; every epoch after that is tensor indexing (no per-sample PIL decode), and a corrupt
  file fails the run before anything is trained or written;
- streamed (``ImageFiles``, ImageFolder channels larger than memory): the file list and each
  file's header are read up front; DataLoader workers decode each batch's files when it is
  drawn, with the same decoding and resizing as the in-memory path.

Both give the same batches for the same seed: the batch indices come from one function
(``epoch_batches`` for training, ``shard_batches`` for evaluation), which also deals them out
to the ranks of a distributed job.
"""

from __future__ import annotations

import contextlib
import os
import pickle
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from trainlib.config import DATA_LOADING_MODES
from trainlib.distributed import shard_bounds
from trainlib.errors import InputError

CIFAR_DIR = "cifar-100-python"
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif", ".tif", ".tiff"}

#: ``auto`` streams when the channels' estimated decoded size, times the training processes
#: on this machine (each holds its own copy), exceeds this share of the available memory.
STREAM_MEMORY_FRACTION = 0.25
#: Headers sampled (evenly spaced) to estimate a channel's decoded size.
_SIZE_SAMPLE = 32


@dataclass(frozen=True)
class ImageSet:
    """``images``: uint8 ``[N, 3, H, W]``; ``labels``: int64 ``[N]``; ``classes``: label names;
    ``source_size``: the ``(h, w)`` all files had on disk, None when their sizes were mixed
    (then ``images`` were resized to the image size at load)."""

    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    source_size: tuple[int, int] | None = None

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, indices: torch.Tensor) -> ImageSet:
        return ImageSet(self.images[indices], self.labels[indices], self.classes, self.source_size)

    @property
    def stored_size(self) -> tuple[int, int]:
        """``(h, w)`` of the uint8 images a batch holds."""
        return (int(self.images.shape[2]), int(self.images.shape[3]))

    @property
    def streamed(self) -> bool:
        return False


@dataclass(frozen=True)
class ImageFiles:
    """An ImageFolder channel read from disk batch by batch (larger than memory).

    ``files``: paths relative to ``root`` as one numpy bytes array (forked DataLoader workers
    share it without touching a Python object per file); ``source_size`` as in ``ImageSet``
    (None: sizes are mixed and every image is resized to ``image_size`` when read, as the
    in-memory path does at load); ``workers``: DataLoader worker processes.
    """

    root: Path
    files: np.ndarray
    labels: torch.Tensor
    classes: list[str]
    source_size: tuple[int, int] | None
    image_size: int
    workers: int = 0

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, indices: torch.Tensor) -> ImageFiles:
        keep = indices.numpy()
        return ImageFiles(
            self.root,
            self.files[keep],
            self.labels[indices],
            self.classes,
            self.source_size,
            self.image_size,
            self.workers,
        )

    @property
    def stored_size(self) -> tuple[int, int]:
        return self.source_size or (self.image_size, self.image_size)

    @property
    def streamed(self) -> bool:
        return True

    def read(self, index: int) -> torch.Tensor:
        """Image ``index`` as uint8 ``[3, H, W]``, decoded as ``load_image_folder`` does."""
        path = self.root / self.files[index].decode()
        picture = _decode(path)
        if self.source_size is None:
            picture = _resized(picture, self.image_size)
        elif (picture.height, picture.width) != self.source_size:
            h, w = self.source_size
            raise InputError(
                f"image {path} decodes to {picture.height}x{picture.width}, not the {h}x{w} "
                "its header said (an orientation tag after the pixel data?); "
                "use --data_loading memory"
            )
        return torch.from_numpy(np.array(picture, dtype=np.uint8)).permute(2, 0, 1).contiguous()


#: Either way of holding a channel: same labels, classes, source_size, subset and batches.
Images = ImageSet | ImageFiles


def _unpickle(path: Path) -> dict:
    # The channel is the job's own training data, as in torchvision's CIFAR100 loader.
    try:
        with path.open("rb") as f:
            content = pickle.load(f, encoding="bytes")
    except (
        pickle.UnpicklingError,
        EOFError,
        ValueError,
        TypeError,
        AttributeError,
        ImportError,
    ) as e:
        raise InputError(f"{path} is not a CIFAR-100 python pickle ({type(e).__name__})") from None
    if not isinstance(content, dict):
        raise InputError(f"{path} is not a CIFAR-100 python pickle (no dict inside)")
    return content


def _cifar_root(channel: Path) -> Path | None:
    if (channel / CIFAR_DIR).is_dir():
        return channel / CIFAR_DIR
    if (channel / "meta").is_file():  # the channel is the cifar-100-python folder itself
        return channel
    return None


def load_cifar(root: Path, split: str) -> ImageSet:
    """Read ``root/<split>`` and ``root/meta`` (the official pickles)."""
    meta_path, data_path = root / "meta", root / split
    for path in (meta_path, data_path):
        if not path.is_file():
            raise InputError(
                f"{root} has no {path.name!r} file (CIFAR-100 layout needs {split} and meta)"
            )
    names = _unpickle(meta_path).get(b"fine_label_names")
    batch = _unpickle(data_path)
    data, labels = batch.get(b"data"), batch.get(b"fine_labels")
    if names is None or data is None or labels is None:
        raise InputError(f"{root} lacks b'fine_label_names', b'data' or b'fine_labels'")
    data = np.asarray(data, dtype=np.uint8)
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(data) != len(labels) or len(data) == 0:
        raise InputError(
            f"{data_path}: expected N x 3072 uint8 rows and N labels, got {data.shape}"
        )
    classes = [n.decode() if isinstance(n, bytes) else str(n) for n in names]
    targets = torch.as_tensor(np.asarray(labels, dtype=np.int64))
    if targets.min() < 0 or targets.max() >= len(classes):
        raise InputError(f"{data_path}: a label is outside 0..{len(classes) - 1}")
    images = torch.from_numpy(data.reshape(-1, 3, 32, 32).copy())
    return ImageSet(images, targets, classes, (32, 32))


def _class_dirs(channel: Path) -> list[Path]:
    return sorted(p for p in channel.iterdir() if p.is_dir() and not p.name.startswith("."))


def _decode(path: Path) -> Image.Image:
    try:
        with Image.open(path) as im:
            im.load()
            return ImageOps.exif_transpose(im).convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise InputError(f"corrupt or unreadable image {path} ({type(e).__name__})") from None


def _resized(picture: Image.Image, image_size: int) -> Image.Image:
    """Mixed sizes are brought to ``image_size`` once, where they are decoded."""
    return picture.resize((image_size, image_size), Image.Resampling.BILINEAR)


#: Info keys from which PIL's getexif reads an orientation without decoding the pixels.
_ORIENTATION_KEYS = ("exif", "xmp", "XML:com.adobe.xmp", "Raw profile type exif")


def _header_size(path: Path) -> tuple[int, int]:
    """``(h, w)`` of the decoded image, from the file's header (EXIF orientation included)."""
    try:
        with Image.open(path) as im:
            width, height = im.size
            oriented = hasattr(im, "tag_v2") or any(k in im.info for k in _ORIENTATION_KEYS)
            if oriented and im.getexif().get(ExifTags.Base.Orientation, 1) in (5, 6, 7, 8):
                width, height = height, width
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise InputError(f"corrupt or unreadable image {path} ({type(e).__name__})") from None
    return height, width


def _list_image_folder(
    channel: Path, classes: Sequence[str] | None
) -> tuple[list[str], list[Path], list[int]]:
    """Class names (the training channel's when given) and every image file with its label,
    in sorted folder, then sorted file order."""
    dirs = _class_dirs(channel)
    found = [d.name for d in dirs]
    if classes is None:
        classes = found
    else:
        unknown = sorted(set(found) - set(classes))
        if unknown:
            raise InputError(
                f"{channel} has classes the training channel lacks: {', '.join(unknown[:5])}"
            )
    index = {name: i for i, name in enumerate(classes)}
    paths: list[Path] = []
    labels: list[int] = []
    for d in dirs:
        files = sorted(p for p in d.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise InputError(
                f"class folder {d} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})"
            )
        paths.extend(files)
        labels.extend([index[d.name]] * len(files))
    return list(classes), paths, labels


def load_image_folder(
    channel: Path, image_size: int, classes: Sequence[str] | None = None
) -> ImageSet:
    """Decode ``<class>/<file>`` images; ``classes`` fixes the label order (the test channel
    reuses the training channel's). Mixed sizes are resized to ``image_size`` once, here."""
    names, paths, labels = _list_image_folder(channel, classes)
    pictures = [_decode(path) for path in paths]
    sizes = {im.size for im in pictures}
    source_size = None
    if len(sizes) > 1:
        pictures = [_resized(im, image_size) for im in pictures]
    else:
        width, height = sizes.pop()
        source_size = (height, width)
    array = np.stack([np.asarray(im, dtype=np.uint8) for im in pictures])
    images = torch.from_numpy(array).permute(0, 3, 1, 2).contiguous()
    return ImageSet(images, torch.tensor(labels, dtype=torch.int64), names, source_size)


def stream_image_folder(
    channel: Path, image_size: int, classes: Sequence[str] | None = None, workers: int = 0
) -> ImageFiles:
    """The files of ``<class>/<file>`` and their headers (sizes, so ``source_size`` is known
    and an unreadable file fails now); the pixels are decoded batch by batch in training.
    A file whose pixel data is cut short is only found when it is first read."""
    names, paths, labels = _list_image_folder(channel, classes)
    with ThreadPoolExecutor(max_workers=min(16, (os.cpu_count() or 1) * 2)) as pool:
        sizes = set(pool.map(_header_size, paths))
    source_size = sizes.pop() if len(sizes) == 1 else None
    relative = np.array([str(p.relative_to(channel)).encode() for p in paths], dtype=np.bytes_)
    return ImageFiles(
        channel,
        relative,
        torch.tensor(labels, dtype=torch.int64),
        names,
        source_size,
        image_size,
        workers,
    )


def load_channel(
    channel: Path,
    split: str,
    image_size: int,
    classes: Sequence[str] | None = None,
    *,
    loading: str = "memory",
    workers: int = 0,
) -> Images:
    """Load a channel in whichever layout it holds; ``split`` picks the CIFAR pickle.
    ``loading="stream"`` streams an ImageFolder (``workers`` DataLoader processes); the
    CIFAR pickles are always read into memory."""
    name = f"{split} channel {channel}"
    _check_channel(channel, name)
    root = _cifar_root(channel)
    if root is not None:
        loaded = load_cifar(root, split)
        if classes is not None and loaded.classes != list(classes):
            raise InputError(f"{name}: its class names differ from the training channel's")
        return loaded
    if _class_dirs(channel):
        if loading == "stream":
            return stream_image_folder(channel, image_size, classes, workers)
        return load_image_folder(channel, image_size, classes)
    raise InputError(f"{name} holds neither {CIFAR_DIR}/ nor <class>/<image> folders")


def _check_channel(channel: Path, name: str) -> None:
    if not channel.is_dir():
        raise InputError(f"{name} does not exist or is not a directory")
    if not any(channel.iterdir()):
        raise InputError(f"{name} is empty")


def estimated_decoded_bytes(channel: Path, image_size: int) -> int:
    """What an ImageFolder channel takes decoded in memory: the file count times the uint8
    size of one image, from a sample of headers (``image_size`` squared when they differ).
    0 for anything else (a CIFAR channel is read whole either way; errors come at load)."""
    if not channel.is_dir() or _cifar_root(channel) is not None:
        return 0
    try:
        _, paths, _ = _list_image_folder(channel, None)
        step = max(1, len(paths) // _SIZE_SAMPLE)
        sizes = {_header_size(p) for p in paths[::step][:_SIZE_SAMPLE]}
    except (InputError, OSError):
        return 0
    h, w = sizes.pop() if len(sizes) == 1 else (image_size, image_size)
    return len(paths) * 3 * h * w


def available_memory_bytes() -> int | None:
    """Memory available now (MemAvailable), capped by the cgroup's limit; None if unknown."""
    found: list[int] = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    if not found:
        with contextlib.suppress(ValueError, OSError, AttributeError):
            found.append(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    for limit_file in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(limit_file).read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 1 << 60:  # "max" or a huge number: no limit
            found.append(int(text))
    return min(found) if found else None


def choose_loading(
    mode: str, channels: Sequence[Path], image_size: int, local_processes: int = 1
) -> tuple[str, str]:
    """``memory`` or ``stream`` for ``--data_loading mode``, and why (for the log)."""
    if mode not in DATA_LOADING_MODES:
        raise ValueError(f"data_loading must be one of {DATA_LOADING_MODES}, got {mode!r}")
    if mode != "auto":
        return mode, f"--data_loading {mode}"
    needed = sum(estimated_decoded_bytes(c, image_size) for c in channels) * local_processes
    available = available_memory_bytes()
    gib = 1 << 30
    if available is not None and needed > STREAM_MEMORY_FRACTION * available:
        return "stream", (
            f"auto: about {needed / gib:.1f} GiB decoded ({local_processes} process(es)) is over "
            f"{STREAM_MEMORY_FRACTION:.0%} of the {available / gib:.1f} GiB available"
        )
    return "memory", "auto"


def loader_workers(local_processes: int = 1) -> int:
    """DataLoader workers of a streamed channel: this machine's CPUs shared by its training
    processes, one left to each process itself, between 1 and 8."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return max(1, min(8, cpus // max(1, local_processes) - 1))


def split_train_val(data: Images, val_fraction: float, seed: int) -> tuple[Images, Images]:
    """Seeded, stratified hold-out: ``val_fraction`` of each class (at least one image of
    every class with two or more) goes to validation."""
    generator = torch.Generator().manual_seed(seed)
    val_parts, train_parts = [], []
    for label in torch.unique(data.labels).tolist():
        members = torch.nonzero(data.labels == label).flatten()
        members = members[torch.randperm(len(members), generator=generator)]
        n_val = min(len(members) - 1, max(1, round(val_fraction * len(members))))
        val_parts.append(members[:n_val])
        train_parts.append(members[n_val:])
    val_idx, train_idx = torch.cat(val_parts), torch.cat(train_parts)
    if len(val_idx) == 0 or len(train_idx) == 0:
        raise InputError(
            f"training channel has {len(data)} images: too few for a validation split of {val_fraction}"
        )
    return data.subset(train_idx.sort().values), data.subset(val_idx.sort().values)


def epoch_batches(
    n: int,
    batch_size: int,
    generator: torch.Generator | None,
    rank: int = 0,
    world_size: int = 1,
) -> list[torch.Tensor]:
    """One training epoch's batches of indices for rank ``rank`` of ``world_size``.

    One seeded permutation of ``0..n-1`` (the same on every rank: the generator is seeded
    alike) is dealt out: rank r takes ``order[r::world_size]`` of its first
    ``n - n % world_size`` entries, so every rank does the same number of steps and together
    they see each image at most once; the ``n % world_size`` left over (fewer than the ranks,
    a different few each epoch) sit the epoch out. Per rank, the batches are consecutive
    ``batch_size`` slices, so global step s covers ``order[s*B:(s+1)*B]`` with B =
    ``batch_size * world_size``: the batches one process with batch B would draw. A last
    batch of one image is dropped: BatchNorm in train mode cannot normalise a single 1x1
    feature map. One process: exactly the batches of before.
    """
    order = torch.randperm(n, generator=generator)
    if world_size > 1:
        order = order[: n - n % world_size][rank::world_size]
    mine = len(order)
    batches = [order[start : start + batch_size] for start in range(0, mine, batch_size)]
    if batches and len(batches[-1]) == 1 and mine > 1:
        batches.pop()
    return batches


def steps_per_epoch(n: int, batch_size: int, world_size: int = 1) -> int:
    """``len(epoch_batches(n, batch_size, ..., world_size=world_size))``, at least 1."""
    mine = n // world_size
    return max(1, mine // batch_size + (mine % batch_size > 1))


def shard_batches(
    n: int, batch_size: int, rank: int = 0, world_size: int = 1
) -> list[torch.Tensor]:
    """Evaluation batches, in order, of rank ``rank``'s contiguous shard (``shard_bounds``)."""
    start, stop = shard_bounds(n, rank, world_size)
    return [torch.arange(i, min(i + batch_size, stop)) for i in range(start, stop, batch_size)]


def _collate(samples: list[Any]) -> Any:
    """A batch of (image, label) pairs, or the first error message a worker met."""
    for sample in samples:
        if isinstance(sample, str):
            return sample
    images, labels = zip(*samples, strict=True)
    return torch.stack(images), torch.tensor(labels, dtype=torch.int64)


class _FileDataset(torch.utils.data.Dataset):
    """``ImageFiles`` for a DataLoader: errors travel back as text (one ``error:`` line)."""

    def __init__(self, data: ImageFiles) -> None:
        self.data = data

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int] | str:
        try:
            return self.data.read(index), int(self.data.labels[index])
        except InputError as e:
            return str(e)


def load_batches(
    data: Images, batches: Sequence[torch.Tensor]
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """uint8 image / label batches for the given index batches: tensor indexing in memory,
    decoded by ``data.workers`` DataLoader processes (in order) when streamed."""
    if isinstance(data, ImageSet):
        for idx in batches:
            yield data.images[idx], data.labels[idx]
        return
    if not batches:
        return
    loader = torch.utils.data.DataLoader(
        _FileDataset(data),
        batch_sampler=[idx.tolist() for idx in batches],
        num_workers=data.workers,
        collate_fn=_collate,
        pin_memory=torch.cuda.is_available(),
        # Its own generator (for the workers' seeds, unused): drawing them from the global
        # one would shift the crops and dropout masks that follow.
        generator=torch.Generator(),
    )
    for batch in loader:
        if isinstance(batch, str):
            raise InputError(batch)
        yield batch


def iterate_batches(
    data: Images, batch_size: int, *, shuffle: bool, generator: torch.Generator | None = None
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """uint8 image / label batches of one process: shuffled training batches
    (``epoch_batches``) or every image in order."""
    n = len(data)
    batches = epoch_batches(n, batch_size, generator) if shuffle else shard_batches(n, batch_size)
    yield from load_batches(data, batches)
