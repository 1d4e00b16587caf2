"""The `shoal` commands that talk to a running suite: how they find it, how they report failure, and the everyday
reads (lists, frames as JSON lines, exports, evaluation figures, similar frames).

Finding the suite, first match wins: `--address host:port` (every service behind one address, such as the chart's
ingress) or `--host` (the default ports there); the `SHOAL_ADDRESS` / `SHOAL_<SERVICE>_ADDRESS` / `SHOAL_HOST`
environment; the ports `shoal up` wrote into the state directory (`--state-dir`, `$SHOAL_HOME`, `./.shoal`); else
localhost on the default ports. The key: `--api-key`, `$SHOAL_API_KEY`, else — only when the suite is the one the
state directory describes — that directory's admin key.

Failures print what the server said — code, reason, each field violation — or what was wrong with a file, in a
few lines and never a traceback, and exit 1 (2 for a command line that cannot be run).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from shoal.kit.settings import DEFAULT_GRPC_PORTS, SERVICES
from shoal.runner.suite import ADMIN_KEY_FILE, STATE_FILE, SuiteConfig

EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2
ADDRESS_ENV: Final = ("SHOAL_ADDRESS", "SHOAL_HOST", *(f"SHOAL_{s.upper()}_ADDRESS" for s in SERVICES))


def state_dir(args: argparse.Namespace) -> Path:
    return Path(getattr(args, "state_dir", None) or os.environ.get("SHOAL_HOME", ".shoal")).resolve()


def add_connection(p: argparse.ArgumentParser) -> None:
    """The options every command that calls the suite takes."""
    p.add_argument(
        "--address",
        default=None,
        help="host:port that serves every service (an ingress); default: $SHOAL_ADDRESS, "
        "$SHOAL_<SERVICE>_ADDRESS, --host, the ports in the state dir, else localhost",
    )
    p.add_argument("--host", default=None, help="suite host on the default ports (default: $SHOAL_HOST)")
    p.add_argument("--api-key", default="", help="API key (default: $SHOAL_API_KEY, else the state dir's admin key)")
    p.add_argument(
        "--retries", type=int, default=2, help="retries of a call that finds a service unavailable (default 2)"
    )


def client(args: argparse.Namespace) -> Any:
    """A client of the suite the command line names (see the module docstring for the order)."""
    import shoal  # noqa: PLC0415

    state = state_dir(args)
    key = args.api_key or os.environ.get("SHOAL_API_KEY", "")
    elsewhere = args.address or args.host or any(os.environ.get(name) for name in ADDRESS_ENV)
    if not key and not elsewhere and (state / ADMIN_KEY_FILE).exists():
        # The local suite's admin key goes only to the local suite, never to an address given elsewhere.
        key = (state / ADMIN_KEY_FILE).read_text().strip()
    if not key:
        raise CommandError(
            "no API key: pass --api-key or set SHOAL_API_KEY (the state dir's admin key is used only for the suite "
            "that state dir describes)"
        )
    addresses: dict[str, str] | None = None
    if args.address or args.host:
        # The command line wins over the environment, for every service.
        addresses = {name: args.address or f"{args.host}:{port}" for name, port in DEFAULT_GRPC_PORTS.items()}
    elif not any(os.environ.get(name) for name in ADDRESS_ENV) and (state / STATE_FILE).exists():
        config = SuiteConfig.load(state)
        addresses = {name: f"{config.host}:{ports.grpc_port}" for name, ports in config.services.items()}
    return shoal.Client(
        host=args.host,
        api_key=key,
        address=args.address,
        addresses=addresses,
        max_retries=max(0, args.retries),
        show_progress=sys.stderr.isatty(),
    )


class CommandError(Exception):
    """Something about the command line or its files that the user must fix; printed as one line."""


def report(err: BaseException) -> int:
    """Print a failure in a few lines; the exit status for it."""
    import grpc  # noqa: PLC0415

    from shoal.kit.status import unpack  # noqa: PLC0415
    from shoal.sdk.errors import OperationError, UploadError, ValidationError  # noqa: PLC0415

    if isinstance(err, grpc.RpcError):
        details = unpack(err)
        reason = f" {details.reason}" if details.reason and details.reason != details.code.name else ""
        print(f"error: {details.code.name}{reason}: {details.message}", file=sys.stderr)
        for v in details.violations:
            print(f"  {v.field}: {v.description}", file=sys.stderr)
        if details.code == grpc.StatusCode.UNAVAILABLE:
            print("  (is the suite running? `shoal status` tells; --address or --state-dir say where)", file=sys.stderr)
        return EXIT_FAILED
    if isinstance(err, FileNotFoundError):
        print(f"error: no such file: {err.filename}", file=sys.stderr)
        return EXIT_FAILED
    if isinstance(err, json.JSONDecodeError):
        print(f"error: not JSON (line {err.lineno}, column {err.colno}): {err.msg}", file=sys.stderr)
        return EXIT_FAILED
    if isinstance(err, CommandError | ValidationError | UploadError | OperationError | ValueError | KeyError | OSError):
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE if isinstance(err, CommandError) else EXIT_FAILED
    if os.environ.get("SHOAL_DEBUG"):
        raise err
    # Anything else (a file in a shape nobody expected) is still one line; SHOAL_DEBUG=1 shows the traceback.
    print(f"error: {type(err).__name__}: {err} (SHOAL_DEBUG=1 shows where)", file=sys.stderr)
    return EXIT_FAILED


def run(func: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Run a command; failures become a short message and a non-zero exit."""
    try:
        return func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`shoal frames … | head`): not a failure of the command.
        sys.stderr.close()
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as err:
        return report(err)


# the everyday reads ---------------------------------------------------------------------------------------------


def _when(ts: Any) -> str:
    return ts.ToDatetime().isoformat(timespec="seconds") if ts.seconds else "-"


def cmd_list(args: argparse.Namespace) -> int:
    from shoal.v1 import upload_pb2  # noqa: PLC0415

    what = args.what
    with client(args) as c:
        if what == "projects":
            for p in c.list_projects():
                print(f"{p.name.removeprefix('projects/'):<32}{len(p.class_map.entries):>5} classes  {p.display_name}")
            return 0
        _need(args, "project")
        if what == "datasets":
            for d in c.list_datasets(args.project):
                print(f"{d.name.rsplit('/', 1)[1]:<32}{_when(d.create_time)}  {d.display_name}")
            return 0
        _need(args, "dataset")
        _dataset_exists(c, args)
        if what == "versions":
            for v in c.list_versions(args.project, args.dataset):
                tags = f"  [{', '.join(cp.rsplit('/', 1)[1] for cp in v.checkpoints)}]" if v.checkpoints else ""
                print(
                    f"v{v.version:<6}{_when(v.commit_time)}  {v.frame_count:>9} frames  +{v.frames_added} "
                    f"~{v.frames_modified} -{v.frames_deleted}{tags}"
                )
        elif what == "checkpoints":
            for cp in c.list_checkpoints(args.project, args.dataset):
                print(f"{cp.name.rsplit('/', 1)[1]:<32}v{cp.version:<6}{cp.description}")
        else:  # uploads
            for u in c.list_uploads(args.project, args.dataset, limit=args.limit):
                state = upload_pb2.UploadState.Name(u.state).removeprefix("UPLOAD_STATE_").lower()
                print(
                    f"{u.name.rsplit('/', 1)[1]:<36}{state:<18}{u.frames_accepted:>8} accepted "
                    f"{u.frames_rejected + u.frames_failed:>6} failed  versions {list(u.versions)}"
                )
                if args.errors:
                    for e in c.list_upload_errors(u.name)[: args.limit or None]:
                        where = " ".join(x for x in (e.frame_id, e.label_id, e.field) if x)
                        print(f"    {where}: {e.reason}: {e.description}")
    return 0


def cmd_frames(args: argparse.Namespace) -> int:
    """Frames of a version as JSON lines (the Frame message in proto3 JSON)."""
    from google.protobuf import json_format  # noqa: PLC0415

    with client(args) as c:
        _dataset_exists(c, args)
        frames = c.get_frames(
            args.project,
            args.dataset,
            version=args.version,
            checkpoint=args.checkpoint,
            filter=args.filter,
            fields=args.fields or None,
        )
        for n, frame in enumerate(frames, 1):
            print(json.dumps(json_format.MessageToDict(frame, preserving_proto_field_name=True)))
            if args.limit and n >= args.limit:
                break
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """A version as COCO JSON or as the reference client's frame rows (JSON lines)."""
    from shoal.sdk import coco, serialized  # noqa: PLC0415

    with client(args) as c:
        _dataset_exists(c, args)
        frames = list(c.get_frames(args.project, args.dataset, version=args.version, checkpoint=args.checkpoint))
        if args.format == "coco":
            project = c.get_project(args.project)
            data = coco.export_coco(frames, project.class_map, image_url_prefix=args.image_url_prefix)
            Path(args.out).write_text(json.dumps(data) + "\n")
            print(f"{len(data['images'])} images, {len(data['annotations'])} annotations → {args.out}")
        else:
            serialized.write_jsonl(serialized.write_frames(frames, split=args.split), args.out)
            print(f"{len(frames)} frames → {args.out}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Evaluate an inference set against the version it is pinned to; print the figures."""
    with client(args) as c:
        _dataset_exists(c, args)
        params: dict[str, Any] = {"task": args.task} if args.task else {}
        evaluation = c.evaluate(args.project, args.dataset, args.inference_set, **params)
    result = evaluation.result
    if args.json:
        print(json.dumps({"name": evaluation.name, "metrics": dict(result.metrics)}))
        return 0
    print(f"{evaluation.name} (labels of version {evaluation.dataset_version})")
    for name, value in result.metrics.items():
        print(f"  {name:<24}{value:.4f}")
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    with client(args) as c:
        _dataset_exists(c, args)
        found = c.search(args.project, args.dataset, frame_ids=args.frame, k=args.k, version=args.version)
    for query, neighbours in zip(args.frame, found, strict=True):
        print(query)
        for n in neighbours:
            print(f"  {n.frame_id:<32}{n.label_id or '-':<20}{n.distance:.4f}")
    return 0


def _need(args: argparse.Namespace, option: str) -> None:
    if not getattr(args, option, None):
        raise CommandError(f"`shoal list {args.what}` needs --{option}")


def _dataset_exists(c: Any, args: argparse.Namespace) -> None:
    if not c.dataset_exists(args.project, args.dataset):
        raise CommandError(
            f"no dataset {args.dataset!r} in project {args.project!r} (`shoal list datasets` lists them)"
        )


def add_commands(sub: Any, with_state: Callable[[argparse.ArgumentParser], argparse.ArgumentParser]) -> None:
    """Register the everyday read commands on the `shoal` parser."""

    def dataset_args(p: argparse.ArgumentParser, *, required: bool = True) -> None:
        p.add_argument("--project", required=required)
        p.add_argument("--dataset", required=required)

    def version_args(p: argparse.ArgumentParser) -> None:
        where = p.add_mutually_exclusive_group()
        where.add_argument("--version", type=int, default=None, help="a version number (default: the newest)")
        where.add_argument("--checkpoint", default=None, help="a checkpoint's name")

    p = with_state(sub.add_parser("list", help="list projects, datasets, versions, checkpoints or uploads"))
    p.add_argument("what", choices=["projects", "datasets", "versions", "checkpoints", "uploads"])
    add_connection(p)
    dataset_args(p, required=False)
    p.add_argument("--errors", action="store_true", help="with uploads: each upload's failed frames and why")
    p.add_argument("--limit", type=int, default=None, help="with uploads: at most this many (and errors each)")
    p.set_defaults(func=cmd_list)

    p = with_state(sub.add_parser("frames", help="frames of a version as JSON lines, optionally filtered"))
    add_connection(p)
    dataset_args(p)
    version_args(p)
    p.add_argument("--filter", default="", help="metadata filter, e.g. 'weather = \"rain\" AND speed > 10'")
    p.add_argument("--fields", nargs="*", default=[], help="only these fields (a read mask)")
    p.add_argument("--limit", type=int, default=0, help="at most this many frames")
    p.set_defaults(func=cmd_frames)

    p = with_state(sub.add_parser("export", help="a version as COCO JSON or as frame rows (JSON lines)"))
    p.add_argument("format", choices=["coco", "frames"])
    add_connection(p)
    dataset_args(p)
    version_args(p)
    p.add_argument("--out", required=True, help="the file to write")
    p.add_argument("--split", action="store_true", help="frames: labels in rows of their own (the streaming shape)")
    p.add_argument("--image-url-prefix", default="", help="coco: removed from image URLs to make file names")
    p.set_defaults(func=cmd_export)

    p = with_state(sub.add_parser("evaluate", help="evaluate an inference set and print the figures"))
    add_connection(p)
    dataset_args(p)
    p.add_argument("--inference-set", required=True)
    p.add_argument("--task", default="", help="e.g. detection, keypoints (default: from the predictions' geometry)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_evaluate)

    p = with_state(sub.add_parser("search", help="frames most like the given ones, by embedding"))
    add_connection(p)
    dataset_args(p)
    p.add_argument("--frame", action="append", required=True, help="a query frame id (repeatable)")
    p.add_argument("-k", type=int, default=10, help="neighbours per query")
    p.add_argument("--version", type=int, default=None)
    p.set_defaults(func=cmd_search)
