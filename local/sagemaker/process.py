"""Run one training job as a local process under the SageMaker container contract.

The source dir (``sagemaker_submit_directory``) is unpacked from local S3 and its
``sagemaker_program`` runs with every other hyperparameter as ``--name value``; channels,
model dir and output dir arrive as ``SM_*`` variables. Metrics are read from the log with
the request's MetricDefinitions regexes, as SageMaker reads CloudWatch logs.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from local.s3 import LocalS3


@dataclass
class JobOutcome:
    status: str  # Completed | Failed | Stopped
    failure_reason: str | None = None
    final_metrics: dict[str, float] = field(default_factory=dict)


def decode_hyperparameter(value: str) -> str:
    """The SageMaker SDK JSON-encodes hyperparameters (``'"hpo.py"'``); the toolkit decodes."""
    try:
        decoded = json.loads(value)
    except ValueError:
        return value
    return decoded if isinstance(decoded, str) else value


def command_line(hyperparameters: dict[str, str]) -> tuple[str, list[str]]:
    program = hyperparameters.get("sagemaker_program")
    if not program:
        raise ValueError("HyperParameters lack sagemaker_program (the script to run)")
    args: list[str] = []
    for name, value in hyperparameters.items():
        if not name.startswith("sagemaker_"):
            args += [f"--{name}", decode_hyperparameter(value)]
    return decode_hyperparameter(program), args


def torchrun_processes(job: dict[str, Any]) -> int | None:
    """How many processes torchrun starts for this job, None when it runs without torchrun.

    In AWS, ``sagemaker_torch_distributed_enabled`` makes the PyTorch container run
    ``torchrun --nnodes <instances> --nproc_per_node <GPUs, or 1 on CPU>``
    (sagemaker-training-toolkit). Locally every instance is one CPU process: a
    ``--nproc_per_node <InstanceCount>`` torchrun on this machine."""
    flag = decode_hyperparameter(
        job.get("HyperParameters", {}).get("sagemaker_torch_distributed_enabled", "false")
    )
    if flag.lower() != "true":
        return None
    return int(job.get("ResourceConfig", {}).get("InstanceCount", 1))


def _die_with_parent() -> None:
    """Linux: the job dies with the thread that watches it, even on SIGKILL of the stack."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class TrainingProcess:
    def __init__(self, job: dict[str, Any], workdir: Path, s3: LocalS3, threads: int) -> None:
        self.job, self.workdir, self.s3, self.threads = job, workdir, s3, threads
        self.log_path = workdir / "log.txt"
        self.model_dir = workdir / "model"
        self.output_dir = workdir / "output" / "data"
        self._proc: subprocess.Popen[str] | None = None
        self._stopped = False

    def stop(self) -> None:
        self._stopped = True
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()

    def run(
        self,
        on_started: Callable[[int], None],
        on_metrics: Callable[[dict[str, float]], None],
    ) -> JobOutcome:
        try:
            program, args, env, code_dir = self._prepare()
        except (ValueError, OSError) as error:
            return JobOutcome("Failed", f"ClientError: {error}")
        definitions = [
            (d["Name"], re.compile(d["Regex"]))
            for d in self.job["AlgorithmSpecification"].get("MetricDefinitions", [])
        ]
        final: dict[str, float] = {}
        limit = self.job.get("StoppingCondition", {}).get("MaxRuntimeInSeconds", 86400)
        started = time.monotonic()
        tail: list[str] = []
        processes = torchrun_processes(self.job)
        launcher = (
            [
                *("-m", "torch.distributed.run", "--standalone", "--nnodes", "1"),
                *("--nproc_per_node", str(processes)),
            ]
            if processes
            else []
        )
        with self.log_path.open("w") as log:
            self._proc = subprocess.Popen(
                [sys.executable, *launcher, program, *args],
                cwd=code_dir,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                bufsize=1,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )
            on_started(self._proc.pid)
            assert self._proc.stdout is not None
            for line in self._proc.stdout:
                log.write(line)
                log.flush()
                tail = [*tail[-19:], line.rstrip()]
                found = {n: float(m.group(1)) for n, r in definitions if (m := r.search(line))}
                if found:
                    final.update(found)
                    on_metrics(found)
                if time.monotonic() - started > limit:
                    self._proc.kill()
                    return JobOutcome("Stopped", "MaxRuntimeExceeded", final)
            code = self._proc.wait()
        if self._stopped:
            return JobOutcome("Stopped", None, final)
        if code != 0:
            errors = [line for line in tail if line.lower().startswith("error")] or tail[-1:]
            message = errors[-1] if errors else ""
            return JobOutcome("Failed", f"AlgorithmError: exit code {code}: {message}", final)
        self._upload()
        return JobOutcome("Completed", None, final)

    def _prepare(self) -> tuple[str, list[str], dict[str, str], Path]:
        hyperparameters = self.job.get("HyperParameters", {})
        program, args = command_line(hyperparameters)
        source = decode_hyperparameter(hyperparameters.get("sagemaker_submit_directory", ""))
        code_dir = self.workdir / "code"
        if source.startswith("s3://"):
            self.s3.extract(source, code_dir)
        else:
            raise ValueError("sagemaker_submit_directory must be an s3:// URI of a .tar.gz")
        if not (code_dir / program).is_file():
            raise ValueError(f"{program} not found in {source}")
        self.model_dir.mkdir(parents=True, exist_ok=True)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        channels = {}
        for channel in self.job.get("InputDataConfig", []):
            path = self.s3.path(channel["DataSource"]["S3DataSource"]["S3Uri"])
            if not path.exists():
                raise ValueError(f"channel {channel['ChannelName']}: {path} does not exist")
            channels[channel["ChannelName"]] = path
        instances = int(self.job.get("ResourceConfig", {}).get("InstanceCount", 1))
        hosts = [f"algo-{n}" for n in range(1, instances + 1)]
        # The machine's threads, shared by the instances' processes.
        threads = max(1, self.threads // instances)
        env = dict(os.environ)
        env.update(
            {
                "SM_MODEL_DIR": str(self.model_dir),
                "SM_OUTPUT_DATA_DIR": str(self.output_dir),
                "SM_OUTPUT_DIR": str(self.output_dir.parent),
                "SM_NUM_GPUS": "0",
                "SM_NUM_CPUS": str(threads),
                "SM_CURRENT_HOST": "algo-1",
                "SM_HOSTS": json.dumps(hosts),
                "SM_CHANNELS": json.dumps(sorted(channels)),
                "SM_HPS": json.dumps(
                    {k: decode_hyperparameter(v) for k, v in hyperparameters.items()}
                ),
                "SM_TRAINING_ENV": json.dumps({"job_name": self.job["TrainingJobName"]}),
                "TRAINING_JOB_NAME": self.job["TrainingJobName"],
                "OMP_NUM_THREADS": str(threads),
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.update({f"SM_CHANNEL_{n.upper()}": str(p) for n, p in channels.items()})
        env.update(self.job.get("Environment", {}))
        return program, args, env, code_dir

    def _upload(self) -> None:
        prefix = self.job["OutputDataConfig"]["S3OutputPath"].rstrip("/")
        base = f"{prefix}/{self.job['TrainingJobName']}/output"
        self.s3.put_tarball(self.model_dir, f"{base}/model.tar.gz")
        self.s3.put_tarball(self.output_dir, f"{base}/output.tar.gz")
