"""Whether the local stack can train from torchvision's ImageNet weights.

With them, the embedded default fine-tunes a pretrained, frozen ResNet-34 trunk, as the
cloud does; without them (offline, or a download that fails) it trains from scratch. The
weights come from TORCH_HOME's cache (``<torch hub dir>/checkpoints``, where torchvision
keeps them) or one download attempt at start with a short timeout; the jobs then read the
cache, so no training job depends on the network.
"""

from __future__ import annotations

import logging
import os
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("local.weights")

#: The weights training/trainlib/model.py loads (torchvision's ResNet34_Weights.IMAGENET1K_V1).
WEIGHTS_URL = "https://download.pytorch.org/models/resnet34-b627a593.pth"
DOWNLOAD_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Availability:
    available: bool
    detail: str  # where they are, or why not


def cached_path(url: str = WEIGHTS_URL) -> Path:
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)


def imagenet_weights(url: str = WEIGHTS_URL, timeout_s: float = DOWNLOAD_TIMEOUT_S) -> Availability:
    """The weights in TORCH_HOME's cache, fetched there once if missing and reachable."""
    target = cached_path(url)
    if target.is_file() and target.stat().st_size > 0:
        return Availability(True, f"cached in {target}")
    import torch.hub

    target.parent.mkdir(parents=True, exist_ok=True)
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout_s)  # urllib's connect and reads, for this attempt only
    try:
        # Into a temporary name first: an interrupted download never looks like weights.
        with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
            partial = Path(scratch) / target.name
            torch.hub.download_url_to_file(url, str(partial), progress=False)
            partial.replace(target)
    except Exception as error:  # offline, DNS, TLS, HTTP errors, a timeout: all mean "no"
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        return Availability(False, f"{type(error).__name__}: {reason}")
    finally:
        socket.setdefaulttimeout(previous)
    return Availability(True, f"downloaded to {target}")
