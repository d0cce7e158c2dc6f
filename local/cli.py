"""``cifar100`` (also ``python -m local``): the local stack and a client for its API.

``serve`` (the default) starts the stack; the other commands talk to it over HTTP at
``--url``, else ``$LOCAL_API_URL``, else http://127.0.0.1:8000. docs/cli.md has examples.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from local.client import ApiClient

COMMANDS = {
    "serve": "start the local stack and its API (the default command)",
    "predict": "classify an image with the deployed model",
    "tune": "start a retraining run: tune, train the best trial, gate, deploy",
    "watch": "follow a run, with progress, until it ends",
    "runs": "list every run, newest first",
    "show": "a run's outcome, metrics and curve files",
    "models": "list the registered model versions and the one serving",
    "promote": "put an approved version (back) in service",
    "approve": "approve a version waiting for approval: deploys it",
}
DEFAULT_URL = "http://127.0.0.1:8000"
DEFAULT_TOP_K = 5  # what the server's banner promises, and the API's default
REPO = Path(__file__).resolve().parents[1]
DESCRIPTION = f"""\
The serverless CIFAR-100 service on this machine, and a client for its API.

serve (the default command) starts the local stack; the other commands talk to its API
at --url, else $LOCAL_API_URL, else {DEFAULT_URL}."""


def api_url(args: argparse.Namespace) -> str:
    return args.url or os.environ.get("LOCAL_API_URL") or DEFAULT_URL


class Parser(argparse.ArgumentParser):
    """Usage errors in one line (exit 2), with the closest command for a misspelt one."""

    def error(self, message: str) -> NoReturn:
        bad = re.search(r"invalid choice: '([^']*)'", message)
        close = difflib.get_close_matches(bad.group(1), COMMANDS, n=1) if bad else []
        hint = f"; did you mean {close[0]}?" if close else ""
        self.exit(2, f"{self.prog}: error: {message}{hint} (see {self.prog} --help)\n")


def _range(kind: type, separator: str, example: str) -> Any:
    def parse(text: str) -> dict[str, Any]:
        low, _, high = text.partition(separator)
        try:
            return {"min": kind(low), "max": kind(high or low)}
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected MIN{separator}MAX or one value, e.g. {example}; got {text!r}"
            ) from None

    return parse


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return value


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a probability from 0 to 1, got {text!r}")
    return value


def _sizes(text: str) -> list[int]:
    try:
        return [int(size) for size in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected whole numbers separated by commas, e.g. 16,32; got {text!r}"
        ) from None


def build_parser(prog: str = "cifar100") -> argparse.ArgumentParser:
    parser = Parser(
        prog=prog,
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"{prog} alone is {prog} serve. {prog} <command> --help lists the command's\n"
        "options; docs/cli.md has an example of each.",
    )
    commands = parser.add_subparsers(dest="command", title="commands", metavar="<command>")

    def command(name: str) -> argparse.ArgumentParser:
        return commands.add_parser(name, help=COMMANDS[name], description=COMMANDS[name])

    serve = command("serve")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument(
        "--root",
        type=Path,
        default=REPO / ".local-stack",
        help="state folder (default: .local-stack in the repository)",
    )
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
    confidence = serve.add_argument_group(
        "retraining when the model's confidence drops (the cloud's ConfidenceAlarm* parameters)"
    )
    confidence.add_argument(
        "--confidence-threshold",
        type=_fraction,
        metavar="P",
        help="start a drift run when the mean top-1 probability of /predict answers stays "
        "below P (0-1); off by default",
    )
    confidence.add_argument(
        "--confidence-period-seconds",
        type=float,
        default=60.0,
        metavar="S",
        help="the alarm's period: the mean is taken over each (default: 60)",
    )
    confidence.add_argument(
        "--confidence-evaluation-periods",
        type=_positive_int,
        default=3,
        metavar="N",
        help="consecutive periods below the threshold that start a run (default: 3)",
    )
    serve.add_argument(
        "--verbose",
        action="store_true",
        help="log everything: each request, the API's JSON logs and metric lines",
    )

    for name in list(COMMANDS)[1:]:
        sub = command(name)
        sub.add_argument(
            "--url", help=f"the local API (default: $LOCAL_API_URL, else {DEFAULT_URL})"
        )
        aws = sub.add_argument_group("a deployed stack (requests SigV4-signed for execute-api)")
        aws.add_argument("--stack", help="CloudFormation stack name: its ApiUrl output is the API")
        aws.add_argument("--profile", help="AWS profile (default: AWS_PROFILE, else the default)")
        aws.add_argument("--region", help="AWS region (default: the profile's, or the URL's)")
        aws.add_argument(
            "--sign",
            action="store_true",
            help="sign requests to --url too (a custom domain; execute-api URLs always are)",
        )
        sub.add_argument("--json", action="store_true", help="print the API's JSON, for scripts")
        if name == "predict":
            sub.add_argument("image", type=Path, help="a PNG or JPEG file")
            sub.add_argument(
                "--top-k",
                type=_positive_int,
                metavar="K",
                default=DEFAULT_TOP_K,
                help=f"how many labels (default: {DEFAULT_TOP_K})",
            )
        if name in ("watch", "show"):
            sub.add_argument("run_id", help="as `runs` lists it or `tune` printed it")
        if name in ("promote", "approve"):
            sub.add_argument("version", type=_positive_int, help="as `models` lists it")
        if name == "promote":
            sub.add_argument("--watch", action="store_true", help="follow the deployment run")
        if name == "tune":
            sub.add_argument(
                "--max-jobs", type=_positive_int, metavar="N", help="tuning trials in all"
            )
            sub.add_argument(
                "--max-parallel-jobs", type=_positive_int, metavar="N", help="trials at once"
            )
            sub.add_argument(
                "--epochs",
                type=_range(int, "-", "1-3"),
                metavar="MIN-MAX",
                help="epochs searched, e.g. 1-3",
            )
            sub.add_argument(
                "--learning-rate",
                type=_range(float, ":", "0.001:0.05"),
                metavar="MIN:MAX",
                help="learning rates searched, e.g. 0.001:0.05",
            )
            sub.add_argument(
                "--batch-sizes", type=_sizes, metavar="N,N", help="batch sizes tried, e.g. 16,32"
            )
            sub.add_argument("--watch", action="store_true", help="follow the run until it ends")
    return parser


def overrides_from(args: argparse.Namespace) -> dict[str, Any]:
    overrides = {
        "max_jobs": args.max_jobs,
        "max_parallel_jobs": args.max_parallel_jobs,
        "epochs": args.epochs,
        "learning_rate": args.learning_rate,
        "batch_sizes": args.batch_sizes,
    }
    return {k: v for k, v in overrides.items() if v is not None}


def main(argv: list[str] | None = None, prog: str = "cifar100") -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # No command, or options only: `serve` (what `make run ARGS=--sample-data` relies on).
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help")):
        argv.insert(0, "serve")
    args = build_parser(prog).parse_args(argv)
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
            confidence_threshold=args.confidence_threshold,
            confidence_period_s=args.confidence_period_seconds,
            confidence_evaluation_periods=args.confidence_evaluation_periods,
            verbose=args.verbose,
        )

    import httpx

    from local.aws_target import TargetError
    from local.client import ApiClient, ApiError

    url = api_url(args)
    watching: list[str] = []  # the run being watched, for Ctrl-C's note
    # The mistakes people make (stack not running, a wrong path, a wrong run id, no
    # credentials) get one line, not a traceback.
    try:
        url, auth = target(args)
        run_command(args, ApiClient(url, auth), prog, watching)
    except TargetError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except httpx.TransportError as error:
        where = "the deployed API" if args.stack or args.sign else "the local API"
        hint = (
            "check the stack and your network"
            if args.stack or args.sign
            else f"start the stack with `make run` or `{prog} serve`, or point --url or "
            "LOCAL_API_URL at a running one"
        )
        print(
            f"error: cannot reach {where} at {url} ({error or type(error).__name__}); {hint}",
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
    except KeyboardInterrupt:
        # 130, as for any command stopped by Ctrl-C: what it printed is not the whole answer.
        if watching:
            print(
                f"stopped watching; run {watching[0]} goes on ({prog} watch {watching[0]})",
                file=sys.stderr,
            )
        return 130
    return 0


def target(args: argparse.Namespace) -> tuple[str, Any]:
    """The API's URL and, for a deployed stack, the SigV4 signer of its requests."""
    from local.aws_target import SigV4, TargetError, execute_api_region, session, stack_url

    url = api_url(args)
    if not (args.stack or args.sign or execute_api_region(url)):
        return url, None
    aws = session(args.profile, args.region)
    if args.stack:
        url = stack_url(aws.client("cloudformation"), args.stack)
    region = args.region or execute_api_region(url) or aws.region_name
    if not region:
        raise TargetError("no AWS region: pass --region or set one in the profile")
    return url, SigV4(aws.get_credentials(), region)


def say(line: str) -> None:
    print(line, flush=True)  # progress shows up at once, also through a pipe


def summary(run: dict[str, Any]) -> str:
    """The final record of a watched run, as one JSON line."""
    from local.client import outcome_reason

    return json.dumps(
        {
            "status": run["status"],
            "reason": outcome_reason(run),
            "metrics": run["metrics"],
            "error": run["error"],
        }
    )


def json_answer(args: argparse.Namespace, api: ApiClient, watching: list[str]) -> Any:
    """--json: what the API answered, one JSON document (``watch``: the final record)."""
    if args.command == "predict":
        return api.predict(args.image, args.top_k)
    if args.command == "tune":
        accepted = api.tune(overrides_from(args))
        if not args.watch:
            return accepted
        watching.append(accepted["run_id"])
        return api.watch(accepted["run_id"], out=lambda _: None)
    if args.command == "watch":
        watching.append(args.run_id)
        return api.watch(args.run_id, out=lambda _: None)
    if args.command == "runs":
        return list(api.runs())
    if args.command == "models":
        return list(api.models())
    if args.command == "approve":
        return api.approve(args.version)
    if args.command == "promote":
        accepted = api.promote(args.version)
        if not args.watch:
            return accepted
        watching.append(accepted["run_id"])
        return api.watch(accepted["run_id"], out=lambda _: None)
    run = api.run(args.run_id)
    return {**run, "curves": (api.curves(args.run_id) or {}).get("curves", [])}


def run_line(run: dict[str, Any]) -> str:
    from local.client import outcome_reason

    acc = run["metrics"].get("test_acc")
    line = f"{run['run_id']}  {run['status']:<11} {run['created_at']}  test_acc="
    line += "-" if acc is None else f"{acc:.4f}"
    reason = outcome_reason(run) if run["status"] != "DEPLOYED" else None
    return f"{line}  {reason}" if reason else line


def model_line(model: dict[str, Any]) -> str:
    """``*  3  Approved   test_acc=0.7412  r2026...  <why>``: the serving one starred."""
    acc = model["metrics"].get("test_acc")
    line = f"{'*' if model['serving'] else ' '} {model['version']:>3}  "
    line += f"{model['approval_status']:<21} test_acc={'-' if acc is None else f'{acc:.4f}'}"
    line += f"  {model.get('run_id') or '-'}"
    reason = model.get("approval_description")
    return f"{line}  {reason}" if reason else line


def print_all(items: Any, line: Any, none: str) -> None:
    """One line per item, as the pages arrive; ``none`` on stderr when there is nothing."""
    listed = 0
    for item in items:
        print(line(item))
        listed += 1
    if not listed:
        print(none, file=sys.stderr)


def run_command(
    args: argparse.Namespace,
    api: ApiClient,
    prog: str = "cifar100",
    watching: list[str] | None = None,
) -> None:
    from local.client import outcome_reason

    watching = [] if watching is None else watching
    if getattr(args, "json", False):
        print(json.dumps(json_answer(args, api, watching)))
        return
    if args.command == "predict":
        result = api.predict(args.image, args.top_k)
        for p in result["predictions"]:
            print(f"{p['probability']:7.2%}  {p['label']}")
        print(f"model: {result['model'].get('version')}")
    elif args.command == "tune":
        accepted = api.tune(overrides_from(args))
        say(f"run {accepted['run_id']} started ({accepted['status']})")
        if args.watch:
            watching.append(accepted["run_id"])
            print(summary(api.watch(accepted["run_id"], out=say)))
    elif args.command == "watch":
        watching.append(args.run_id)
        print(summary(api.watch(args.run_id, out=say)))
    elif args.command == "runs":
        print_all(api.runs(), run_line, f"no runs yet; start one with {prog} tune")
    elif args.command == "models":
        none = f"no model registered yet; a run registers one ({prog} tune)"
        print_all(api.models(), model_line, none)
    elif args.command == "promote":
        accepted = api.promote(args.version)
        say(f"run {accepted['run_id']} deploys version {args.version} ({accepted['status']})")
        if args.watch:
            watching.append(accepted["run_id"])
            print(summary(api.watch(accepted["run_id"], out=say)))
    elif args.command == "approve":
        approved = api.approve(args.version)
        print(f"version {approved['version']} {approved['approval_status']}: its deployment starts")
    elif args.command == "show":
        run = api.run(args.run_id)
        shown = {k: run[k] for k in ("status", "best_hyperparameters", "metrics", "error")}
        print(
            json.dumps({"status": run["status"], "reason": outcome_reason(run), **shown}, indent=2)
        )
        # The server knows its state folder (serve --root): it names the files.
        curves = (api.curves(args.run_id) or {}).get("curves", [])
        for path in curves:
            print(f"curve: {path}")
        if not curves:
            print("curves: none (the final training job writes them)")
