"""The cheapest training settings the entry-point tests share, as script-mode arguments."""

from __future__ import annotations

# A random trunk (--pretrained false) would be trained by default; these tests keep it frozen.
_FAST = {
    "pretrained": "false",
    "freeze_backbone": "true",
    "image_size": "32",
    "batch_size": "16",
    "hidden_units": "64",
}


def fast_args(**overrides: object) -> list[str]:
    """``--name value`` pairs of the fast settings, with ``overrides`` (None drops one)."""
    values = {**_FAST, **overrides}
    return [arg for name, v in values.items() if v is not None for arg in (f"--{name}", str(v))]
