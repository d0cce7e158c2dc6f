"""INFERENCE_PRECISION, the CPU's int8 dot-product instructions, and the graphs tried in order."""

from __future__ import annotations

import logging

import pytest
import serving_precision
from serving_precision import (
    cpu_flags,
    cpu_has_int8_dot_product,
    precisions_to_try,
    requested_precision,
)

# Trimmed from real /proc/cpuinfo files: two logical CPUs each, as the kernel prints them.
X86_VNNI = """\
processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8488C
flags\t\t: fpu vme sse sse2 ssse3 sse4_1 sse4_2 avx avx2 fma avx512f avx512dq avx512bw \
avx512vl avx512_vnni avx512_bf16 amx_bf16 amx_tile amx_int8
bugs\t\t: spectre_v1 spectre_v2

processor\t: 1
vendor_id\t: GenuineIntel
flags\t\t: fpu vme sse sse2 ssse3 sse4_1 sse4_2 avx avx2 fma avx512f avx512dq avx512bw \
avx512vl avx512_vnni avx512_bf16 amx_bf16 amx_tile amx_int8
"""
X86_AVX512_NO_VNNI = """\
processor\t: 0
model name\t: Intel(R) Xeon(R) Platinum 8175M CPU @ 2.50GHz
flags\t\t: fpu vme sse sse2 ssse3 sse4_1 sse4_2 avx avx2 fma avx512f avx512dq avx512cd avx512bw avx512vl
vmx flags\t: vnmi preemption_timer invvpid ept_x_only

processor\t: 1
flags\t\t: fpu vme sse sse2 ssse3 sse4_1 sse4_2 avx avx2 fma avx512f avx512dq avx512cd avx512bw avx512vl
"""
X86_AVX_VNNI = """\
processor\t: 0
model name\t: 12th Gen Intel(R) Core(TM) i7-12700
flags\t\t: fpu sse sse2 avx avx2 fma avx_vnni
"""
ARM_DOTPROD = """\
processor\t: 0
BogoMIPS\t: 243.75
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm \
lrcpc dcpop asimddp ssbs
CPU implementer\t: 0x41
CPU part\t: 0xd0c

processor\t: 1
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm \
lrcpc dcpop asimddp ssbs
"""
ARM_NO_DOTPROD = """\
processor\t: 0
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 cpuid
CPU part\t: 0xd08
"""


@pytest.mark.parametrize(
    ("cpuinfo", "expected"),
    [
        (X86_VNNI, True),
        (X86_AVX512_NO_VNNI, False),
        (X86_AVX_VNNI, True),
        (ARM_DOTPROD, True),
        (ARM_NO_DOTPROD, False),
        ("", False),
    ],
    ids=["x86-avx512_vnni", "x86-avx512-no-vnni", "x86-avx_vnni", "arm-asimddp", "arm-no", "empty"],
)
def test_int8_dot_product_detection(cpuinfo, expected) -> None:
    assert cpu_has_int8_dot_product(cpuinfo) is expected


def test_flags_are_read_from_the_flags_and_features_lines_only() -> None:
    flags = cpu_flags(X86_AVX512_NO_VNNI)
    assert "avx512f" in flags
    assert "vnmi" not in flags  # "vmx flags" is another line
    assert "Xeon(R)" not in flags
    assert cpu_flags(ARM_DOTPROD) >= {"asimd", "asimddp"}


def test_a_flag_counts_only_when_every_cpu_has_it() -> None:
    mixed = X86_VNNI.replace("avx512_vnni", "", 1).replace("amx_int8\nbugs", "\nbugs", 1)
    assert cpu_has_int8_dot_product(mixed) is False


def test_without_proc_cpuinfo_there_is_no_int8(monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(serving_precision, "CPUINFO", tmp_path / "absent")
    assert cpu_has_int8_dot_product() is False
    (tmp_path / "cpuinfo").write_text(ARM_DOTPROD)
    monkeypatch.setattr(serving_precision, "CPUINFO", tmp_path / "cpuinfo")
    assert cpu_has_int8_dot_product() is True


@pytest.mark.parametrize(
    ("value", "expected"), [(None, "auto"), ("FP32", "fp32"), ("int8", "int8")]
)
def test_requested_precision(monkeypatch, value, expected) -> None:
    if value is not None:
        monkeypatch.setenv("INFERENCE_PRECISION", value)
    assert requested_precision() == expected


def test_an_unknown_precision_names_the_variable(monkeypatch) -> None:
    monkeypatch.setenv("INFERENCE_PRECISION", "float16")
    with pytest.raises(ValueError, match="INFERENCE_PRECISION must be auto, int8 or fp32"):
        requested_precision()


BOTH = {"fp32": "model.onnx", "int8": "model.int8.onnx"}


@pytest.mark.parametrize(
    ("requested", "shipped", "dot_product", "expected"),
    [
        ("auto", BOTH, True, ["int8", "fp32"]),
        ("auto", BOTH, False, ["fp32"]),
        ("int8", BOTH, False, ["int8", "fp32"]),
        ("fp32", BOTH, True, ["fp32"]),
        ("auto", {"fp32": "model.onnx"}, True, ["fp32"]),
        ("auto", {}, True, []),
        ("int8", {}, True, []),
    ],
)
def test_the_graphs_tried_in_order(monkeypatch, requested, shipped, dot_product, expected) -> None:
    monkeypatch.setattr(serving_precision, "cpu_has_int8_dot_product", lambda: dot_product)
    assert precisions_to_try(requested, shipped, None) == expected


def test_int8_asked_of_an_older_artifact_warns(caplog) -> None:
    assert precisions_to_try("int8", {}, None) == []
    assert [r.getMessage() for r in caplog.records] == [
        "INFERENCE_PRECISION=int8, but the artifact ships no int8 graph; serving fp32"
    ]


def test_a_failed_quantization_is_named_in_the_warning(caplog) -> None:
    caplog.set_level(logging.WARNING)
    record = {"shipped": False, "reason": "quantization failed: boom"}
    precisions_to_try("int8", {"fp32": "model.onnx"}, record)
    (line,) = [r.getMessage() for r in caplog.records]
    assert "training shipped no int8 graph: quantization failed: boom" in line
