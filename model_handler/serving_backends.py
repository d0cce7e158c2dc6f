"""Where and with what the network runs: device, CPU threads, and ONNX Runtime or TorchScript.

ONNX Runtime runs this network ~4x faster than torch eager at batch 1 on CPU. An artifact that
ships ONNX graphs is served from them (serving_graphs_loader); for one that does not, the
TorchScript graph is exported to ONNX at load here and serves when its logits match; otherwise
the TorchScript module is frozen and serves with torch.
"""

from __future__ import annotations

import io
import logging
import os
import warnings
from pathlib import Path
from typing import Any

import torch
from serving_config import env_int

logger = logging.getLogger(__name__)

BACKENDS = ("auto", "torch", "onnxruntime")


def select_device() -> torch.device:
    """INFERENCE_DEVICE if set (cpu, cuda, cuda:1), else the GPU when the instance has one."""
    wanted = os.environ.get("INFERENCE_DEVICE", "").strip()
    if wanted:
        return torch.device(wanted)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def requested_backend() -> str:
    """INFERENCE_BACKEND: auto (default), torch or onnxruntime; anything else is refused."""
    wanted = os.environ.get("INFERENCE_BACKEND", "auto").strip().lower() or "auto"
    if wanted not in BACKENDS:
        raise ValueError(f"INFERENCE_BACKEND must be auto, torch or onnxruntime, not {wanted!r}")
    return wanted


def available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def inference_threads() -> int:
    """Intra-op threads per worker: INFERENCE_NUM_THREADS, else the CPUs shared among the
    model server's workers (SAGEMAKER_MODEL_SERVER_WORKERS), so workers do not oversubscribe."""
    explicit = env_int("INFERENCE_NUM_THREADS", 0)
    if explicit > 0:
        return explicit
    workers = max(1, env_int("SAGEMAKER_MODEL_SERVER_WORKERS", 1))
    return max(1, available_cpus() // workers)


def load_torchscript(weights: Path, device: torch.device) -> torch.jit.ScriptModule:
    """model.pt, straight onto ``device``, in eval mode."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        module = torch.jit.load(str(weights), map_location=device)  # type: ignore[no-untyped-call]
    module.eval()
    return module


def optimise_for_cpu(module: torch.jit.ScriptModule) -> torch.jit.ScriptModule:
    """Freeze (weights become constants, conv+BN folded) for ~10-15% lower CPU latency."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated, not gone
            return torch.jit.optimize_for_inference(torch.jit.freeze(module))
    except Exception:  # an exotic graph that cannot be frozen still serves unfrozen
        logger.warning("could not freeze the TorchScript module; serving it as loaded")
        return module


def open_onnx_session(onnxruntime: Any, graph: bytes | str, threads: int) -> Any:
    """An ONNX Runtime CPU session on a serialised graph or a file, as every worker opens it."""
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # Idle threads sleep instead of spinning: several model-server workers share the CPUs.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return onnxruntime.InferenceSession(graph, options, providers=["CPUExecutionProvider"])


def onnx_session(module: torch.jit.ScriptModule, size: tuple[int, int], threads: int) -> Any | None:
    """Export the TorchScript graph to ONNX in memory and open an ONNX Runtime CPU session.

    Optional: None when onnxruntime/onnx are not installed.
    """
    try:
        import onnxruntime
    except ImportError:
        return None
    example = torch.zeros(1, 3, *size)
    exported = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            (example,),
            exported,  # type: ignore[arg-type]  # writes to any file object; typed for paths
            dynamo=False,  # the TorchScript exporter: the artifact is a TorchScript graph
            input_names=["input"],
            output_names=["logits"],
            dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
        )
    return open_onnx_session(onnxruntime, exported.getvalue(), threads)


def agrees_with_torch(session: Any, module: torch.jit.ScriptModule, size: tuple[int, int]) -> bool:
    """The exported graph must give the TorchScript module's logits before it may serve."""
    sample = torch.randn(2, 3, *size, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        expected = module(sample).float()
    got = torch.from_numpy(session.run(None, {"input": sample.numpy()})[0])
    return bool(torch.allclose(got, expected, rtol=1e-3, atol=1e-3 * float(expected.abs().max())))


def select_backend(
    module: torch.jit.ScriptModule, size: tuple[int, int], wanted: str | None = None
) -> Any | None:
    """Export at load: ONNX Runtime when installed and faithful (auto, onnxruntime), or torch.

    ``wanted`` is INFERENCE_BACKEND (read from the environment when None). Returns the ONNX
    Runtime session that is to serve, or None for torch.
    """
    wanted = requested_backend() if wanted is None else wanted
    if wanted == "torch":
        return None
    try:
        session = onnx_session(module, size, torch.get_num_threads())
    except Exception as exc:
        if wanted == "onnxruntime":
            raise
        logger.warning("ONNX export failed (%s); serving with torch", exc)
        return None
    if session is None or not agrees_with_torch(session, module, size):
        if wanted == "onnxruntime":
            raise RuntimeError("INFERENCE_BACKEND=onnxruntime, but it is missing or disagrees")
        return None
    return session
