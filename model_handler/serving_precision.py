"""Which precision of the shipped ONNX graphs serves: INFERENCE_PRECISION and the CPU.

auto (the default) serves the int8 graph when the artifact ships one and the CPU has int8
dot-product instructions (x86 VNNI or AMX, Arm's dot product). Without them ONNX Runtime's
u8s8 kernels are slower than fp32 and can saturate (its quantization guide), so auto serves
fp32 there; int8 asks for the int8 graph on any CPU; fp32 never serves int8.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

PRECISIONS = ("auto", "int8", "fp32")
CPUINFO = Path("/proc/cpuinfo")
# x86: AVX512-VNNI, AVX-VNNI (VEX), AMX int8 tiles; Arm: SDOT/UDOT (the "dotprod" extension).
INT8_DOT_PRODUCT_FLAGS = frozenset({"avx512_vnni", "avx_vnni", "amx_int8", "asimddp"})


def requested_precision() -> str:
    """INFERENCE_PRECISION: auto (default), int8 or fp32; anything else is refused."""
    wanted = os.environ.get("INFERENCE_PRECISION", "auto").strip().lower() or "auto"
    if wanted not in PRECISIONS:
        raise ValueError(f"INFERENCE_PRECISION must be auto, int8 or fp32, not {wanted!r}")
    return wanted


def cpu_flags(cpuinfo: str) -> frozenset[str]:
    """The feature flags every CPU in ``cpuinfo`` (/proc/cpuinfo's text) has: the "flags"
    lines on x86, the "Features" lines on Arm."""
    common: frozenset[str] | None = None
    for line in cpuinfo.splitlines():
        key, colon, value = line.partition(":")
        if colon and key.strip().lower() in ("flags", "features"):
            flags = frozenset(value.split())
            common = flags if common is None else common & flags
    return common or frozenset()


def cpu_has_int8_dot_product(cpuinfo: str | None = None) -> bool:
    """Whether this CPU (or the given /proc/cpuinfo text) has int8 dot-product instructions;
    False where /proc/cpuinfo cannot be read (not Linux)."""
    if cpuinfo is None:
        try:
            cpuinfo = CPUINFO.read_text()
        except OSError:
            return False
    return bool(cpu_flags(cpuinfo) & INT8_DOT_PRODUCT_FLAGS)


def _why_no_int8(int8_record: Any) -> str:
    record = int8_record if isinstance(int8_record, dict) else {}
    reason = record.get("reason")
    if record.get("shipped") or not isinstance(reason, str) or not reason:
        return "the artifact ships no int8 graph"
    if reason.startswith("refused: "):
        return f"training refused the int8 graph: {reason.removeprefix('refused: ')}"
    return f"training shipped no int8 graph: {reason}"


def precisions_to_try(requested: str, shipped: Mapping[str, str], int8_record: Any) -> list[str]:
    """The shipped graphs to open, best first (``shipped``: precision -> file name)."""
    if requested == "int8" and "int8" not in shipped:
        logger.warning("INFERENCE_PRECISION=int8, but %s; serving fp32", _why_no_int8(int8_record))
    wanted = ["fp32"]
    if "int8" in shipped and requested != "fp32":
        if requested == "int8" or cpu_has_int8_dot_product():
            wanted = ["int8", "fp32"]
        else:
            logger.info("no int8 dot-product instructions on this CPU (VNNI); serving fp32")
    return [precision for precision in wanted if precision in shipped]
