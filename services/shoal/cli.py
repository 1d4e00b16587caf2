"""The `shoal` command: run the suite on this machine (`up`, `down`, `status`, `demo`)."""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any, Final

from shoal import __version__, datacli
from shoal.kit.settings import DEFAULT_GRPC_PORTS, DEFAULT_METRICS_PORTS, SERVICES, SettingsError
from shoal.runner import health
from shoal.runner.suite import (
    ADMIN_KEY_FILE,
    LOCK_FILE,
    PID_FILE,
    STATE_FILE,
    SuiteConfig,
    admin_key,
    port_in_use,
    process_running,
)

EXIT_UNHEALTHY = 3


def _state_dir(args: argparse.Namespace) -> Path:
    return datacli.state_dir(args)


def _running_pid(state: Path) -> int | None:
    """The supervisor's pid when one holds the state directory's lock, else None."""
    lock = state / LOCK_FILE
    if not lock.exists():
        return None
    fd = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        try:
            return int((state / PID_FILE).read_text().strip())
        except (FileNotFoundError, ValueError):
            return -1
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _statuses(config: SuiteConfig) -> dict[str, str]:
    full = {
        "ingest": "shoal.v1.IngestService",
        "versioning": "shoal.v1.VersioningService",
        "asset": "shoal.v1.AssetService",
        "metrics": "shoal.v1.MetricsService",
        "embedding": "shoal.v1.EmbeddingService",
    }
    statuses = {name: health.check(config.host, config.services[name].grpc_port, full[name]) for name in SERVICES}
    if config.console_port:
        statuses["console"] = health.check_http(f"{config.console_url}/healthz")
    return statuses


def _print_table(config: SuiteConfig, statuses: dict[str, str]) -> None:
    print(f"{'service':<12}{'grpc':<22}{'metrics':<36}status")
    for name in SERVICES:
        ports = config.services[name]
        grpc_addr = f"{config.host}:{ports.grpc_port}"
        metrics_addr = f"http://{config.host}:{ports.metrics_port}/metrics"
        print(f"{name:<12}{grpc_addr:<22}{metrics_addr:<36}{statuses[name]}")
    if config.console_port:
        print(f"{'console':<12}{config.console_url:<58}{statuses.get('console', 'UNKNOWN')}")
    print(f"redis       {config.effective_redis_url}{'  (embedded)' if config.embedded_redis else ''}")
    print(f"store       {config.effective_store_url}")


SERVER_MODULES: Final = (
    "lance",
    "pyarrow",
    "redis",
    "minio",
    "prometheus_client",
    "shapely",
    "mutagen",
    "pylzf",
    "grpc_reflection",
    "grpc_status",
    "starlette",
    "uvicorn",
)


def _server_installed() -> bool:
    """The services need `shoal[server]`; the SDK and the client commands do not."""
    import importlib  # noqa: PLC0415

    missing = []
    for module in SERVER_MODULES:
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(module)
    if missing:
        print(
            f"the services need shoal[server] (missing: {', '.join(missing)}): pip install 'shoal[server]'",
            file=sys.stderr,
        )
    return not missing


def cmd_up(args: argparse.Namespace) -> int:
    if not _server_installed():
        return 1
    state = _state_dir(args)
    pid = _running_pid(state)
    if pid is not None:
        print(f"shoal is already running from {state} (supervisor pid {pid}); `shoal down` stops it", file=sys.stderr)
        return 1
    config = SuiteConfig.with_ports(
        str(state),
        base_port=args.base_port,
        metrics_base_port=args.metrics_base_port,
        host=args.host,
        redis_url=args.redis_url or os.environ.get("SHOAL_REDIS_URL", ""),
        redis_port=args.redis_port,
        store_url=args.store_url or os.environ.get("SHOAL_STORE_URL", ""),
        s3_endpoint=args.s3_endpoint or os.environ.get("SHOAL_S3_ENDPOINT", ""),
        s3_access_key=os.environ.get("SHOAL_S3_ACCESS_KEY", ""),
        s3_secret_key=os.environ.get("SHOAL_S3_SECRET_KEY", ""),
        s3_secure=os.environ.get("SHOAL_S3_SECURE", "false").lower() in {"1", "true", "yes", "on"},
        log_level=args.log_level,
    )
    if config.store_url.startswith("s3://") and not (
        config.s3_endpoint and config.s3_access_key and config.s3_secret_key
    ):
        print("an s3:// store needs --s3-endpoint, SHOAL_S3_ACCESS_KEY and SHOAL_S3_SECRET_KEY", file=sys.stderr)
        return 2
    busy = [
        f"{name} {kind} port {port}"
        for name, ports in config.services.items()
        for kind, port in (("gRPC", ports.grpc_port), ("metrics", ports.metrics_port))
        if port_in_use(config.host, port)
    ]
    if config.console_port and port_in_use(config.host, config.console_port):
        busy.append(f"console port {config.console_port}")
    if config.embedded_redis and port_in_use(config.host, config.redis_port):
        busy.append(f"embedded Redis port {config.redis_port}")
    if busy:
        print("cannot start, ports in use: " + ", ".join(busy), file=sys.stderr)
        return 1
    try:
        admin_key(state)  # validate or create the key now, so a bad one fails here rather than in five logs
    except SettingsError as err:
        print(err, file=sys.stderr)
        return 2
    config.save()
    (state / "logs").mkdir(exist_ok=True)
    with (state / "logs" / "supervisor.log").open("ab") as out:
        supervisor = subprocess.Popen(
            [sys.executable, "-m", "shoal.runner.supervisor", str(state)],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    deadline = time.monotonic() + args.timeout
    statuses: dict[str, str] = {}
    while time.monotonic() < deadline:
        if supervisor.poll() is not None:
            print(f"the supervisor exited with {supervisor.returncode}; see {state / 'logs'}", file=sys.stderr)
            return 1
        statuses = _statuses(config)
        if all(s == "SERVING" for s in statuses.values()):
            _print_table(config, statuses)
            key_source = "SHOAL_ADMIN_API_KEY" if os.environ.get("SHOAL_ADMIN_API_KEY") else state / ADMIN_KEY_FILE
            print(f"admin API key: {key_source}")
            if config.console_url:
                print(f"console: {config.console_url} (sign in with an API key)")
            print(
                f"logs: {state / 'logs'}   stop with: shoal down" + (f" --state-dir {state}" if args.state_dir else "")
            )
            return 0
        time.sleep(0.3)
    _print_table(config, statuses)
    print(f"not every service became healthy within {args.timeout:.0f} s; see {state / 'logs'}", file=sys.stderr)
    return EXIT_UNHEALTHY


def cmd_down(args: argparse.Namespace) -> int:
    state = _state_dir(args)
    pid = _running_pid(state)
    if pid is None:
        print(f"shoal is not running from {state}")
        return 0
    if pid > 0:
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        if _running_pid(state) is None and (pid <= 0 or not process_running(pid)):
            print("shoal stopped")
            return 0
        time.sleep(0.2)
    if pid > 0:
        # The supervisor did not finish in time: stop its whole session (it and every child) for good.
        os.killpg(pid, signal.SIGKILL)
    print("shoal did not stop in time; killed it", file=sys.stderr)
    return 1


def cmd_status(args: argparse.Namespace) -> int:
    state = _state_dir(args)
    if not (state / STATE_FILE).exists() or _running_pid(state) is None:
        print(f"shoal is not running from {state}")
        return EXIT_UNHEALTHY
    config = SuiteConfig.load(state)
    statuses = _statuses(config)
    if args.json:
        print(json.dumps({"state_dir": str(state), "services": statuses}))
    else:
        _print_table(config, statuses)
    return 0 if all(s == "SERVING" for s in statuses.values()) else EXIT_UNHEALTHY


def cmd_probe(args: argparse.Namespace) -> int:
    """One gRPC health check: container health checks and scripts use it (Kubernetes probes gRPC natively)."""
    host, _, port = args.address.rpartition(":")
    if not host or not port.isdigit():
        print(f"address must be host:port, got {args.address!r}", file=sys.stderr)
        return 2
    status = health.check(host, int(port), args.service, timeout=args.timeout)
    print(status)
    return 0 if status == "SERVING" else EXIT_UNHEALTHY


def _client(args: argparse.Namespace) -> Any:
    return datacli.client(args)


def _create_or_refuse(client: Any, args: argparse.Namespace) -> None:
    """A dataset that does not exist is created only when asked (`--create`): a mistyped name is not a new one."""
    if client.dataset_exists(args.project, args.dataset):
        return
    if not args.create:
        raise datacli.CommandError(
            f"no dataset {args.dataset!r} in project {args.project!r}; pass --create to create it"
        )
    client.create_dataset(args.project, args.dataset, exist_ok=True)


def _print_report(what: str, report: Any) -> None:
    frames = len({err.frame_id for err in report.rejected})
    print(f"{what}: {report.accepted} accepted, {frames} rejected ({report.name})")
    for err in report.rejected[:20]:
        print(f"  {err.frame_id} {err.label_id or '-'} {err.field}: {err.reason}: {err.description}")
    if len(report.rejected) > 20:
        print(f"  … and {len(report.rejected) - 20} more (shoal SDK: client.list_upload_errors)")


def cmd_gt_export(args: argparse.Namespace) -> int:
    from shoal.sdk import groundtruth  # noqa: PLC0415

    with _client(args) as client:
        job = groundtruth.export_skeleton_job(
            client,
            args.project,
            args.dataset,
            class_name=args.class_name,
            version=args.version,
            checkpoint=args.checkpoint,
            segment=args.segment,
            sensor_id=args.sensor,
            pre_annotations=args.pre_annotations,
        )
    manifest, template = job.write(args.out)
    print(f"{len(job.manifest)} images from {job.dataset_version}: {manifest}, {template}")
    return 0


KEYPOINT_RULES: Final = (
    "swapped_keypoints",
    "keypoint_outside_image",
    "keypoint_outside_box",
    "missing_keypoints",
    "bone_length_outlier",
    "duplicate_keypoints",
)


def cmd_keypoints_check(args: argparse.Namespace) -> int:
    """Rank likely keypoint label errors; a table, or JSON lines with --json. Exit 0 either way: finding candidates
    is the command working."""
    from google.protobuf import json_format  # noqa: PLC0415

    from shoal.v1 import evaluation_pb2  # noqa: PLC0415

    with _client(args) as client:
        found = client.check_keypoints(
            args.project,
            args.dataset,
            version=args.version,
            checkpoint=args.checkpoint,
            classes=args.classes,
            rules=args.rules,
            limit=args.limit,
        )
    for c in found:
        if args.json:
            print(json.dumps(json_format.MessageToDict(c, preserving_proto_field_name=True)))
        else:
            rule = evaluation_pb2.LabelErrorReason.Name(c.reason).removeprefix("LABEL_ERROR_REASON_").lower()
            print(f"{c.score:5.2f}  {rule:<24} {c.frame_id}  {c.ground_truth_label_id}  {c.description}")
    if not args.json:
        print(f"{len(found)} candidates", file=sys.stderr)
    return 0


def cmd_gt_import(args: argparse.Namespace) -> int:
    import dataclasses  # noqa: PLC0415

    from shoal.sdk import groundtruth  # noqa: PLC0415

    with _client(args) as client:
        report = groundtruth.import_results(
            client, args.project, args.dataset, args.manifest, class_name=args.class_name, version=args.version
        )
    if report.version:
        print(f"version {report.version}: {report.frames} frames, {report.labels} labels ({report.upload})")
    else:
        print("nothing imported")
    print(report.stats.summary())
    for error in report.errors:
        print(f"  {error}", file=sys.stderr)
    if args.stats:
        Path(args.stats).write_text(json.dumps(dataclasses.asdict(report.stats), indent=2) + "\n")
    return 1 if report.errors else 0


def cmd_import_embeddings(args: argparse.Namespace) -> int:
    with _client(args) as client:
        try:
            report = client.import_embeddings(
                args.project, args.dataset, args.file, ids=args.ids, model_id=args.model_id
            )
        except ValueError as err:
            print(err, file=sys.stderr)
            return 2
        client.wait_for_upload(report.name)
    _print_report("embeddings", report)
    return 1 if report.rejected else 0


def cmd_import_coco(args: argparse.Namespace) -> int:
    from shoal.sdk import coco  # noqa: PLC0415
    from shoal.v1 import upload_pb2  # noqa: PLC0415

    with _client(args) as client:
        # The detections are pinned to the version that holds the whole ground truth: the import waits for it.
        done = coco.upload_coco(
            client,
            args.project,
            args.dataset,
            args.annotations,
            results=args.results,
            inference_set=args.inference_set,
            image_url_prefix=args.image_url_prefix,
            replace=args.replace,
            wait_until_finish=True,
        )
    _print_report("ground truth", done.ground_truth)
    failed = done.ground_truth.rejected or done.ground_truth_upload.state != upload_pb2.UPLOAD_STATE_COMMITTED
    if done.ground_truth_upload.state != upload_pb2.UPLOAD_STATE_COMMITTED:
        state = upload_pb2.UploadState.Name(done.ground_truth_upload.state).removeprefix("UPLOAD_STATE_").lower()
        print(f"ground truth upload ended {state}: `shoal list uploads --errors` says why", file=sys.stderr)
    if done.inferences:
        _print_report("inferences", done.inferences)
        print(f"{args.inference_set} is pinned to version {done.dataset_version}")
        failed = failed or bool(done.inferences.rejected)
    return 1 if failed else 0


def cmd_import_frames(args: argparse.Namespace) -> int:
    """Rows of the reference client's serialized frames (inline or split, one file or several), as one upload; with
    --inference-set, inference rows into that set. Every row that cannot be taken is named by file and line."""
    from shoal.sdk import serialized  # noqa: PLC0415

    with _client(args) as client:
        _create_or_refuse(client, args)
        result = serialized.import_frames(
            client, args.project, args.dataset, args.file, inference_set=args.inference_set or None
        )
    for line in result.describe():
        print(line)
    refused = [r for r in (result.report, result.label_report) if r is not None and r.rejected]
    return 1 if result.read.rejected or refused else 0


def cmd_assets_upload(args: argparse.Namespace) -> int:
    from shoal.sdk.folders import upload_folder  # noqa: PLC0415

    with _client(args) as client:
        _create_or_refuse(client, args)
        report = upload_folder(
            client,
            args.project,
            args.dataset,
            args.folder,
            workers=args.workers,
            manifest=args.manifest,
            kind=args.kind,
            progress=sys.stderr.isatty(),
        )
    print(
        f"assets: {report.uploaded} uploaded, {report.skipped} already done, {len(report.failed)} failed "
        f"(manifest {report.manifest})"
    )
    if report.not_media:
        shown = ", ".join(report.not_media[:5]) + (" …" if len(report.not_media) > 5 else "")
        print(f"skipped {len(report.not_media)} files that are not media: {shown} (--kind uploads them anyway)")
    for rel, why in report.failed:
        print(f"  {rel}: {why}")
    return 1 if report.failed else 0


def cmd_assets_list(args: argparse.Namespace) -> int:
    with _client(args) as client:
        for asset in client.list_assets(args.project, args.dataset):
            kind = asset.WhichOneof("info") or "-"
            print(f"{asset.sha256}  {asset.size_bytes:>12}  {kind:<11}  {asset.filename}")
    return 0


def cmd_keys_create(args: argparse.Namespace) -> int:
    with _client(args) as client:
        made = client.create_api_key(
            args.project,
            role=args.role,
            display_name=args.name,
            expires_in=timedelta(days=args.expires_days) if args.expires_days else None,
        )
    if args.json:
        print(json.dumps({"name": made.api_key.name, "secret": made.secret, "key_prefix": made.api_key.key_prefix}))
    else:
        print(f"{made.api_key.name}  {args.role.lower()} of {', '.join(made.api_key.projects)}")
        print(f"secret (shown once, keep it now): {made.secret}")
    return 0


def _role_name(number: int) -> str:
    from shoal.v1 import project_pb2  # noqa: PLC0415

    try:
        return project_pb2.ApiKeyRole.Name(number).removeprefix("API_KEY_ROLE_").lower()
    except ValueError:
        return "?"


def cmd_keys_list(args: argparse.Namespace) -> int:
    with _client(args) as client:
        keys = client.list_api_keys()
    for key in keys:
        expires = key.expire_time.ToDatetime().isoformat(timespec="seconds") if key.HasField("expire_time") else "never"
        role = _role_name(key.role)
        print(f"{key.name:<26}{key.key_prefix:<16}{role:<8}{expires:<21}{' '.join(key.projects)}  {key.display_name}")
    return 0


def cmd_keys_revoke(args: argparse.Namespace) -> int:
    with _client(args) as client:
        for name in args.key:
            client.delete_api_key(name if name.startswith("apiKeys/") else f"apiKeys/{name}")
            print(f"revoked {name}")
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    """Rewrite every dataset and inference set still in the release-before's table layout into the columnar one."""
    if not _server_installed():
        return 1
    from shoal.kit.objectstore import open_store  # noqa: PLC0415
    from shoal.kit.settings import StoreSettings  # noqa: PLC0415
    from shoal.storage import migration  # noqa: PLC0415
    from shoal.storage.tables import TableRoot  # noqa: PLC0415

    state = _state_dir(args)
    if _running_pid(state) is not None and not args.store_url:
        print(f"shoal is running from {state}; its versioning service migrates by itself", file=sys.stderr)
        return 1
    default = (state / "store").resolve().as_uri()
    env = {**os.environ, "SHOAL_STORE_URL": args.store_url or os.environ.get("SHOAL_STORE_URL", default)}
    settings = StoreSettings.from_env(env)
    done = migration.migrate_store(open_store(settings), TableRoot(settings))
    for item in done:
        print(f"{item.target}: {item.versions} versions migrated")
    print(f"{len(done)} datasets and inference sets migrated" if done else "nothing to migrate")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    if not _server_installed():
        return 1
    from shoal.demo import run_demo  # noqa: PLC0415

    return run_demo(args, cmd_up, cmd_down)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="shoal", description="Versioned ML datasets over gRPC.")
    top.add_argument("--version", action="version", version=f"shoal {__version__}")
    sub = top.add_subparsers(dest="command", required=True)

    def with_state(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--state-dir", help="where logs, data and the state file go (default: $SHOAL_HOME or ./.shoal)")
        return p

    def connected(p: argparse.ArgumentParser) -> None:
        """Arguments of commands that call the suite about one dataset."""
        datacli.add_connection(p)
        p.add_argument("--project", required=True)
        p.add_argument("--dataset", required=True)

    for name, helptext in (
        ("up", "start the suite on this machine"),
        ("demo", "start the suite and use it; from a terminal it stays up with the console on the demo data"),
    ):
        p = with_state(sub.add_parser(name, help=helptext))
        p.add_argument("--host", default="127.0.0.1")
        p.add_argument(
            "--base-port", type=int, default=DEFAULT_GRPC_PORTS["ingest"], help="gRPC port of ingest; the others follow"
        )
        p.add_argument("--metrics-base-port", type=int, default=DEFAULT_METRICS_PORTS["ingest"])
        p.add_argument("--redis-url", default="", help="external Redis (default: run an embedded redis-server)")
        p.add_argument("--redis-port", type=int, default=6390, help="port of the embedded Redis")
        p.add_argument("--store-url", default="", help="file:///path or s3://bucket[/prefix] (default: <state>/store)")
        p.add_argument("--s3-endpoint", default="", help="S3/MinIO endpoint, e.g. http://minio:9000")
        p.add_argument("--log-level", default="INFO")
        p.add_argument("--timeout", type=float, default=60.0, help="seconds to wait until every service is healthy")
        if name == "demo":
            p.add_argument("--stop", action="store_true", help="stop the suite at the end, even from a terminal")
        p.set_defaults(func=cmd_up if name == "up" else cmd_demo)
    p = with_state(sub.add_parser("down", help="stop what `shoal up` started"))
    p.add_argument("--timeout", type=float, default=30.0)
    p.set_defaults(func=cmd_down)
    imp = sub.add_parser("import", help="import labeled data into a dataset").add_subparsers(
        dest="format", required=True
    )
    for name, helptext in (
        ("coco", "a COCO instances or keypoints file (and optionally a results file)"),
        ("frames", "serialized frames (JSON lines)"),
        ("embeddings", "frame embeddings from .npy/.npz, Parquet or Lightly's CSV, by frame id or image file name"),
    ):
        p = with_state(imp.add_parser(name, help=helptext))
        connected(p)
        if name == "embeddings":
            p.add_argument("file", help=".npy (with --ids), .npz, .parquet or Lightly's .csv")
            p.add_argument("--ids", default=None, help="a text file with one frame id or image file name a line")
            p.add_argument("--model-id", default="", help="the embedding's model id (default: the dataset's source)")
            p.set_defaults(func=cmd_import_embeddings)
        elif name == "coco":
            p.add_argument("annotations", help="instances or person_keypoints JSON")
            p.add_argument("--results", help="a results (detections) JSON to upload as an inference set")
            p.add_argument("--inference-set", default="coco-results")
            p.add_argument("--replace", action="store_true", help="replace an inference set of that name")
            p.add_argument("--image-url-prefix", default="", help="prefix for each image's file_name")
            p.set_defaults(func=cmd_import_coco)
        else:
            p.add_argument(
                "file", nargs="+", help="JSON lines, labels inline or split into frame and crop rows (one or more)"
            )
            p.add_argument("--inference-set", default="", help="import inference rows into this inference set")
            p.add_argument("--create", action="store_true", help="create the dataset when it does not exist")
            p.set_defaults(func=cmd_import_frames)
    assets = sub.add_parser("assets", help="images, masks, point clouds and audio stored by Shoal").add_subparsers(
        dest="action", required=True
    )
    for name, helptext in (
        ("upload", "upload a folder (parallel, resumable: a manifest records what is done)"),
        ("list", "list a dataset's assets"),
    ):
        p = with_state(assets.add_parser(name, help=helptext))
        connected(p)
        if name == "upload":
            p.add_argument("folder")
            p.add_argument("--workers", type=int, default=4, help="files uploaded at once")
            p.add_argument("--kind", default=None, help="asset kind for every file (default: from the extension)")
            p.add_argument("--manifest", default=None, help="progress manifest (default: <folder>/.shoal-assets.jsonl)")
            p.add_argument("--create", action="store_true", help="create the dataset when it does not exist")
            p.set_defaults(func=cmd_assets_upload)
        else:
            p.set_defaults(func=cmd_assets_list)
    jobs = sub.add_parser("gt", help="labeling jobs in SageMaker Ground Truth's formats").add_subparsers(
        dest="action", required=True
    )
    p = with_state(jobs.add_parser("export", help="a custom skeleton (keypoint) job from a version"))
    connected(p)
    p.add_argument("--class", dest="class_name", required=True, help="class whose rig the job labels")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--version", type=int, default=None)
    where.add_argument("--checkpoint", default=None)
    where.add_argument("--segment", default=None)
    p.add_argument("--sensor", default=None, help="only this image sensor (default: every image)")
    p.add_argument(
        "--pre-annotations", default="labels", help="labels (adjustment/review job), none, or inferences:<set id>"
    )
    p.add_argument("--out", required=True, help="folder for manifest.jsonl and template-attributes.json")
    p.set_defaults(func=cmd_gt_export)
    p = with_state(jobs.add_parser("import", help="a job's output manifest as a new dataset version"))
    connected(p)
    p.add_argument("manifest", help="output manifest (JSON lines): custom skeleton or built-in bounding box")
    p.add_argument("--class", dest="class_name", default="", help="class of the skeletons (skeleton jobs)")
    p.add_argument("--version", type=int, default=None, help="version the results apply to (default: newest)")
    p.add_argument("--stats", default=None, help="also write the labeling statistics to this JSON file")
    p.set_defaults(func=cmd_gt_import)
    checks = sub.add_parser("keypoints", help="keypoint label checks").add_subparsers(dest="action", required=True)
    p = with_state(checks.add_parser("check", help="rank likely keypoint label errors of a dataset version"))
    connected(p)
    where = p.add_mutually_exclusive_group()
    where.add_argument("--version", type=int, default=None)
    where.add_argument("--checkpoint", default=None)
    p.add_argument("--class", dest="classes", action="append", default=[], help="only this class (repeatable)")
    p.add_argument(
        "--rule",
        dest="rules",
        action="append",
        default=[],
        choices=KEYPOINT_RULES,
        help="only this rule (repeatable)",
    )
    p.add_argument("--limit", type=int, default=None, help="most candidates to print")
    p.add_argument("--json", action="store_true", help="one JSON object per candidate")
    p.set_defaults(func=cmd_keypoints_check)
    keys = sub.add_parser("keys", help="API keys scoped to projects and a role").add_subparsers(
        dest="action", required=True
    )
    for name, helptext in (
        ("create", "make a key (its secret is printed once)"),
        ("list", "list keys (never their secrets)"),
        ("revoke", "revoke keys: the next call with one is refused"),
    ):
        p = with_state(keys.add_parser(name, help=helptext))
        datacli.add_connection(p)
        if name == "create":
            p.add_argument("--project", action="append", required=True, help="project the key may act on (repeatable)")
            p.add_argument("--role", type=str.upper, choices=["READER", "WRITER", "ADMIN"], default="READER")
            p.add_argument("--name", default="", help="a name to tell the key by")
            p.add_argument("--expires-days", type=float, default=0, help="days until the key stops working")
            p.add_argument("--json", action="store_true", help="print name and secret as one JSON object")
            p.set_defaults(func=cmd_keys_create)
        elif name == "list":
            p.set_defaults(func=cmd_keys_list)
        else:
            p.add_argument("key", nargs="+", help="apiKeys/{id} or the id")
            p.set_defaults(func=cmd_keys_revoke)
    datacli.add_commands(sub, with_state)
    p = with_state(sub.add_parser("migrate", help="move datasets of the release before into the columnar tables"))
    p.add_argument("--store-url", default="", help="the store (default: $SHOAL_STORE_URL, else the state dir's)")
    p.set_defaults(func=cmd_migrate)
    p = with_state(sub.add_parser("status", help="health of every service"))
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)
    p = sub.add_parser("probe", help="health of one service at host:port; exits 0 when SERVING")
    p.add_argument("address", help="host:port of the service's gRPC endpoint")
    p.add_argument("--service", default="", help="health service name, e.g. shoal.v1.IngestService (default: overall)")
    p.add_argument("--timeout", type=float, default=2.0)
    p.set_defaults(func=cmd_probe)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return datacli.run(args.func, args)


if __name__ == "__main__":
    raise SystemExit(main())
