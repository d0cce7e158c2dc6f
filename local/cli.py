"""``python -m local [serve]`` starts the stack; the other commands talk to it over HTTP."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from local.client import ApiClient

COMMANDS = ("serve", "predict", "tune", "watch", "runs", "show")
DEFAULT_URL = os.environ.get("LOCAL_API_URL", "http://127.0.0.1:8000")


def _range(kind: type) -> Any:
    def parse(text: str) -> dict[str, Any]:
        low, _, high = text.partition("-") if kind is int else text.partition(":")
        return {"min": kind(low), "max": kind(high or low)}

    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m local", description=__doc__)
    commands = parser.add_subparsers(dest="command")

    serve = commands.add_parser("serve", help="start the local stack and the API (default)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--root", type=Path, default=Path(".local-stack"), help="state folder")
    serve.add_argument(
        "--sample-data",
        action="store_true",
        help="train on generated sample images instead of downloading CIFAR-100 (offline)",
    )
    serve.add_argument("--threads", type=int, default=2, help="CPU threads per job")
    serve.add_argument(
        "--schedule-minutes",
        type=float,
        help="start a retraining run every N minutes (the cloud's RetrainSchedule); off by default",
    )
    serve.add_argument(
        "--reconcile-seconds",
        type=float,
        help="how often the reconciler takes the step a lost event would have "
        "(default: the template's ReconcileSchedule, 5 minutes)",
    )
    serve.add_argument(
        "--drop-sagemaker-events",
        action="store_true",
        help="fault injection: deliver no SageMaker event, so runs progress by the reconciler alone",
    )

    for name in COMMANDS[1:]:
        sub = commands.add_parser(name)
        sub.add_argument("--url", default=DEFAULT_URL, help="the local API")
        if name == "predict":
            sub.add_argument("image", type=Path)
            sub.add_argument("--top-k", type=int, default=3)
        if name in ("watch", "show"):
            sub.add_argument("run_id")
        if name == "tune":
            sub.add_argument("--max-jobs", type=int)
            sub.add_argument("--max-parallel-jobs", type=int)
            sub.add_argument("--epochs", type=_range(int), help="e.g. 1-3")
            sub.add_argument("--learning-rate", type=_range(float), help="e.g. 0.001:0.05")
            sub.add_argument("--batch-sizes", help="e.g. 16,32")
            sub.add_argument("--watch", action="store_true", help="follow the run until it ends")
    return parser


def overrides_from(args: argparse.Namespace) -> dict[str, Any]:
    overrides = {
        "max_jobs": args.max_jobs,
        "max_parallel_jobs": args.max_parallel_jobs,
        "epochs": args.epochs,
        "learning_rate": args.learning_rate,
        "batch_sizes": [int(b) for b in args.batch_sizes.split(",")] if args.batch_sizes else None,
    }
    return {k: v for k, v in overrides.items() if v is not None}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in (*COMMANDS, "-h", "--help"):
        argv.insert(0, "serve")
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        from local.server import serve

        return serve(
            args.host,
            args.port,
            args.root,
            args.sample_data,
            args.threads,
            args.schedule_minutes,
            reconcile_seconds=args.reconcile_seconds,
            drop_sagemaker_events=args.drop_sagemaker_events,
        )

    import httpx

    from local.client import ApiClient, ApiError

    # The mistakes people make (stack not running, a wrong path, a wrong run id) get one
    # line, not a traceback.
    try:
        run_command(args, ApiClient(args.url))
    except httpx.TransportError as error:
        print(
            f"error: cannot reach the local API at {args.url} ({error or type(error).__name__}); "
            "is the local stack running? start it with make run",
            file=sys.stderr,
        )
        return 1
    except OSError as error:
        what = f"cannot read {error.filename}: {error.strerror}" if error.filename else error
        print(f"error: {what}", file=sys.stderr)
        return 1
    except ApiError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


def say(line: str) -> None:
    print(line, flush=True)  # progress shows up at once, also through a pipe


def summary(run: dict[str, Any]) -> str:
    """The final record of a watched run, as one JSON line."""
    return json.dumps({"status": run["status"], "metrics": run["metrics"], "error": run["error"]})


def run_command(args: argparse.Namespace, api: ApiClient) -> None:
    if args.command == "predict":
        result = api.predict(args.image, args.top_k)
        for p in result["predictions"]:
            print(f"{p['probability']:7.2%}  {p['label']}")
        print(f"model: {result['model'].get('version')}")
    elif args.command == "tune":
        accepted = api.tune(overrides_from(args))
        say(f"run {accepted['run_id']} started ({accepted['status']})")
        if args.watch:
            print(summary(api.watch(accepted["run_id"], out=say)))
    elif args.command == "watch":
        print(summary(api.watch(args.run_id, out=say)))
    elif args.command == "runs":
        for run in api.runs():
            acc = run["metrics"].get("test_acc")
            print(f"{run['run_id']}  {run['status']:<11} {run['created_at']}  test_acc={acc}")
    elif args.command == "show":
        run = api.run(args.run_id)
        print(
            json.dumps(
                {k: run[k] for k in ("status", "best_hyperparameters", "metrics", "error")},
                indent=2,
            )
        )
        # The server knows its state folder (serve --root): it names the files.
        for path in api.curves(args.run_id)["curves"]:
            print(f"curve: {path}")
