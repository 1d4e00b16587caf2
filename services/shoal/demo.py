"""`shoal demo`: start the suite on embedded defaults, show it working, stop it. Grows with every capability."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from shoal.kit.settings import SERVICES
from shoal.kit.status import unpack
from shoal.runner.suite import ADMIN_KEY_FILE, SuiteConfig
from shoal.sdk.client import asset_name
from shoal.v1 import versioning_service_pb2, versioning_service_pb2_grpc

Command = Callable[[argparse.Namespace], int]


def _reflected_services(target: str) -> list[str]:
    with grpc.insecure_channel(target) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        replies = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5)
        return sorted(s.name for reply in replies for s in reply.list_services_response.service)


def _handled_total(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        body = response.read().decode()
    lines = [
        line
        for line in body.splitlines()
        if line.startswith("grpc_server_handled_total{") and not line.endswith(" 0.0")
    ]
    return "\n".join(lines) or "(no calls yet)"


def _upload_demo_data(config: SuiteConfig, key: str) -> Any:
    """Draw real images, upload them with their labels and a model's predictions through the SDK, show the reports."""
    import shoal  # noqa: PLC0415
    from shoal import demo_data  # noqa: PLC0415
    from shoal.v1 import frame_pb2, upload_pb2  # noqa: PLC0415

    addresses = {name: f"{config.host}:{ports.grpc_port}" for name, ports in config.services.items()}
    frames = demo_data.draw_frames(config.state / "demo" / "images", 60)
    print(f"\n== drew {len(frames)} images of shapes into {config.state / 'demo' / 'images'}")
    # One batch per upload, so the first upload is exactly version 1 and each later edit one more version.
    with shoal.Client(api_key=key, addresses=addresses, batch_size=500, show_progress=False) as client:
        client.create_project(
            "shapes", shoal.LabelClassMap.from_classnames([*demo_data.CLASSES, "background"]), exist_ok=True
        )
        client.create_dataset(
            "shapes", "drawn", exist_ok=True,
            metadata_schema=[{"name": "background", "type": "STRING"}, {"name": "shape_count", "type": "INTEGER"}],
        )  # fmt: skip
        urls = _store_assets(client, config.state / "demo")
        lidar = client.upload_asset("shapes", "drawn", demo_data.write_scene_pcd(config.state / "demo" / "sweep.pcd"))
        cloud = lidar.point_cloud
        print(
            f"point cloud {lidar.sha256[:12]}: {cloud.point_count} points ({cloud.encoding}, fields "
            f"{' '.join(cloud.fields)}), x {cloud.min.x:.1f}..{cloud.max.x:.1f}, z {cloud.min.z:.1f}..{cloud.max.z:.1f}"
        )
        dataset = demo_data.labeled_dataset(frames, urls, lidar_url=lidar.url)
        client.resolve_masks("projects/shapes/datasets/drawn", dataset.items, dataset.pending_masks)
        semseg = dataset.items[0].labels[0].semantic_segmentation_2d.mask_url
        mask = client.get_asset(asset_name(semseg)).mask
        print(
            f"mask of {frames[0].frame_id}: {mask.width}x{mask.height}, class ids {list(mask.class_ids)} "
            "(uploaded from a NumPy array by add_label_2d_semseg(mask_data=…))"
        )
        # One frame a careless client sends past the SDK's checks: the server rejects it alone.
        careless = frame_pb2.Frame()
        careless.CopyFrom(dataset.items[0])  # type: ignore[arg-type]
        careless.frame_id = "shapes-careless"
        careless.labels[0].label_id, careless.labels[0].classification = "careless-0", "hexagon"
        for label in careless.labels[1:]:
            label.label_id = "careless-" + label.label_id
        report = client.upload("projects/shapes/datasets/drawn", [*dataset.items, careless])
        labels = sum(len(f.shapes) for f in frames)
        rejected = len({e.frame_id for e in report.rejected})
        print(f"ground truth: {report.accepted} frames accepted ({labels} boxes), {rejected} rejected")
        for err in report.rejected:
            print(f"  rejected {err.frame_id} label {err.label_id} {err.field}: {err.reason}: {err.description}")
        # The ground truth is committed before the predictions arrive, so the inference set pins that version.
        client.wait_for_upload(report.name, timeout=120, poll_seconds=0.1)
        inferences, planted = demo_data.model_inferences(frames)
        inf_report = client.create_or_update_inferences(
            "shapes", "drawn", "shape-detector-v1", inferences=inferences, model_id="shape-detector-v1"
        )
        print(f"predictions: {inf_report.accepted} frames accepted, {len(inf_report.rejected)} rejected")
        print(
            f"planted mistakes: {len(planted.missed)} missed, {len(planted.wrong_class)} wrong class, "
            f"{len(planted.loose_box)} loose boxes, {len(planted.false_positive)} false positives "
            f"(e.g. {planted.wrong_class[0] if planted.wrong_class else '-'})"
        )
        for name in (report.name, inf_report.name):
            upload = client.wait_for_upload(name, timeout=120, poll_seconds=0.1)
            print(
                f"upload {name.rsplit('/', 1)[1]}: {upload_pb2.UploadState.Name(upload.state)} "
                f"received {upload.frames_received}, accepted {upload.frames_accepted}, "
                f"rejected {upload.frames_rejected}, batches {upload.batches_received}"
            )
    return planted


def _evaluate_model(config: SuiteConfig, key: str, planted: Any) -> None:
    """Evaluate the model against the version its inference set is pinned to and against the newest one, then walk
    the label-error candidates and check that the planted disagreements lead them."""
    import shoal  # noqa: PLC0415
    from shoal.v1 import evaluation_pb2  # noqa: PLC0415

    addresses = {name: f"{config.host}:{ports.grpc_port}" for name, ports in config.services.items()}
    with shoal.Client(api_key=key, addresses=addresses, show_progress=False) as client:
        pinned = client.evaluate("shapes", "drawn", "shape-detector-v1")
        m = pinned.result.metrics
        print(f"\n== evaluation of shape-detector-v1 on version {pinned.dataset_version} (the version it is pinned to)")
        print(
            "  ".join(
                f"{k} {m[k]:.3f}" if m[k] >= 0 else f"{k} n/a"
                for k in ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100")
            )
        )
        print(
            "per class: "
            + ", ".join(
                f"{c.class_name} AP {c.metrics['AP']:.3f} ({c.support})" for c in pinned.result.per_class if c.support
            )
        )
        cm = pinned.result.confusion_matrix
        n = cm.counts.rows
        print("confusion matrix at IoU 0.5, confidence 0.5 (rows: ground truth, columns: prediction)")
        width = max(len(lb) for lb in cm.labels) + 1
        print(" " * width + "".join(f"{lb[:8]:>9}" for lb in cm.labels))
        for i, lb in enumerate(cm.labels):
            print(f"{lb:<{width}}" + "".join(f"{int(v):>9}" for v in cm.counts.values[i * n : (i + 1) * n]))
        print(f"custom metric latency_ms, mean over frames: {pinned.result.custom_metrics['latency_ms']:.2f}")
        started = time.perf_counter()
        again = client.evaluate("shapes", "drawn", "shape-detector-v1")
        print(
            f"asked again: {again.name.rsplit('/', 1)[1][:12]}… from the store in "
            f"{1000 * (time.perf_counter() - started):.0f} ms"
        )
        newest = client.list_versions("shapes", "drawn")[0].version
        later = client.evaluate("shapes", "drawn", "shape-detector-v1", version=newest)
        print(
            f"on version {newest} (after the edits): AP {later.result.metrics['AP']:.3f}, "
            f"AP50 {later.result.metrics['AP50']:.3f}"
        )

        candidates = client.label_error_candidates(pinned.name)
        reason = {
            v: evaluation_pb2.LabelErrorReason.Name(v).removeprefix("LABEL_ERROR_REASON_").lower()
            for v in evaluation_pb2.LabelErrorReason.values()
        }
        print(f"\n== label-error candidates: {len(candidates)}, the first 12")
        for i, c in enumerate(candidates[:12], start=1):
            print(
                f"{i:>3}. {c.frame_id} {c.ground_truth_label_id or c.prediction_label_id:<22} "
                f"{reason[c.reason]:<24} {c.score:.2f}  {c.description}"
            )
        wanted = {
            **{label: "missed (unmatched_ground_truth)" for label in planted.missed},
            **{label: "wrong_class" for label in planted.wrong_class},
            **{label: "loose_box" for label in planted.loose_box},
            **{label: "false positive (missing_label)" for label in planted.false_positive},
        }
        ranks = {}
        for i, c in enumerate(candidates, start=1):
            for label in (c.ground_truth_label_id, c.prediction_label_id, c.prediction_label_id.removeprefix("pred-")):
                if label in wanted and label not in ranks:
                    ranks[label] = i
        print(
            f"planted: {len(wanted)}, found {len(ranks)}; all within the first {max(ranks.values(), default=0)} "
            f"candidates (ranks {sorted(ranks.values())})"
        )
        if len(ranks) < len(wanted):
            print(f"not among the candidates: {', '.join(sorted(set(wanted) - set(ranks)))}")
        segment = client.segment_from_candidates("shapes", "drawn", "review-label-errors", candidates[:10])
        print(
            f"the first ten are in segment {segment.name.rsplit('/', 1)[1]} "
            f"({len(segment.elements)} elements) for review"
        )


def _store_assets(client: Any, demo: Path) -> dict[str, str]:
    """Upload the drawn images as assets (a folder upload: parallel, resumable); file name → asset URL."""
    import urllib.request  # noqa: PLC0415

    from shoal.sdk.folders import read_manifest, upload_folder  # noqa: PLC0415

    report = upload_folder(client, "shapes", "drawn", demo / "images", workers=4)
    entries = read_manifest(Path(report.manifest))
    done = f"{report.skipped} already there, {len(report.failed)} failed"
    print(f"assets: {report.uploaded} images stored in Shoal ({done})")
    first = client.get_asset(next(iter(entries.values()))["name"])
    with urllib.request.urlopen(first.url, timeout=10) as response:
        loaded = len(response.read())
    print(
        f"  e.g. {first.filename}: {first.image.width}x{first.image.height} {first.image.format}, "
        f"{loaded} bytes loaded from its signed URL; preview at {first.preview_url.split('?')[0]}"
    )
    return {Path(rel).name: entry["url"] for rel, entry in entries.items()}


def _edit_over_versions(config: SuiteConfig, key: str) -> None:
    """Change the dataset a few times and read its history back: versions, a diff, a frame's history, time travel."""
    import shoal  # noqa: PLC0415
    from shoal.v1 import dataset_pb2, frame_pb2  # noqa: PLC0415

    addresses = {name: f"{config.host}:{ports.grpc_port}" for name, ports in config.services.items()}
    with shoal.Client(api_key=key, addresses=addresses, show_progress=False) as client:
        client.create_checkpoint("shapes", "drawn", "as-drawn", description="the dataset as first uploaded")

        def step(what: str, report: shoal.UploadReport) -> None:
            upload = client.wait_for_upload(report.name, timeout=120, poll_seconds=0.1)
            print(f"{what}: version {', '.join(map(str, upload.versions))}")

        gone = shoal.LabeledDataset()
        gone.delete_frame("shapes-0002")
        step("delete shapes-0002", client.create_or_update_dataset("shapes", "drawn", dataset=gone))
        reviewed = shoal.LabeledFrame(frame_id="shapes-0005", update_type="MODIFY")
        reviewed.add_user_metadata("reviewed", True)
        step("mark shapes-0005 reviewed (MODIFY)", client.update_dataset_frames("shapes", "drawn", [reviewed]))
        first = client.get_frame("shapes", "drawn", "shapes-0001")
        box = first.labels[0].box_2d
        moved = shoal.UpdateGTLabelSet(frame_id="shapes-0001")
        moved.update_label_2d_bbox(
            sensor_id="camera", label_id=first.labels[0].label_id, classification=first.labels[0].classification,
            left=box.left + 3, top=box.top + 3, width=box.width, height=box.height,
        )  # fmt: skip
        step("move a box of shapes-0001", client.update_dataset_labels("shapes", "drawn", [moved]))
        print("\n== versions of shapes/drawn")
        for v in client.list_versions("shapes", "drawn"):
            marks = f"  checkpoints: {', '.join(c.rsplit('/', 1)[1] for c in v.checkpoints)}" if v.checkpoints else ""
            print(
                f"v{v.version}: {v.frame_count} frames, {v.label_count} labels "
                f"(+{v.frames_added} ~{v.frames_modified} -{v.frames_deleted}){marks}"
            )
        latest = client.get_dataset("shapes", "drawn").latest_version
        diff = client.diff("shapes", "drawn", "as-drawn", latest)
        kinds = {
            dataset_pb2.FRAME_DIFF_KIND_ADDED: "added",
            dataset_pb2.FRAME_DIFF_KIND_MODIFIED: "modified",
            dataset_pb2.FRAME_DIFF_KIND_DELETED: "deleted",
        }
        counts = f"{diff.added_count} added, {diff.modified_count} modified, {diff.deleted_count} deleted"
        print(f"\n== diff as-drawn → v{latest}: {counts}")
        for d in diff.diffs:
            print(f"  {d.frame_id}: {kinds[d.kind]} {', '.join(d.changed_fields)}")
        print("\n== history of shapes-0001")
        for h in client.get_frame_history("shapes", "drawn", "shapes-0001"):
            b = h.frame.labels[0].box_2d
            print(
                f"  v{h.version} {frame_pb2.ChangeType.Name(h.change_type)}: first box at ({b.left:.0f}, {b.top:.0f})"
            )
        old = sum(1 for _ in client.get_frames("shapes", "drawn", checkpoint="as-drawn", fields=["frame_id"]))
        now = sum(1 for _ in client.get_frames("shapes", "drawn", fields=["frame_id"]))
        print(f"\n== time travel: {old} frames at checkpoint as-drawn, {now} now; shapes-0002 still readable there:")
        print(f"  {client.get_frame('shapes', 'drawn', 'shapes-0002', checkpoint='as-drawn').sensors[0].image.url}")


def _embeddings(config: SuiteConfig, key: str) -> None:
    """Simple embeddings of the drawn images (8×8 colour thumbnails), then a similarity search and a diverse selection
    on the version that holds them."""
    import numpy as np  # noqa: PLC0415
    from PIL import Image  # noqa: PLC0415

    import shoal  # noqa: PLC0415

    addresses = {name: f"{config.host}:{ports.grpc_port}" for name, ports in config.services.items()}
    with shoal.Client(api_key=key, addresses=addresses, show_progress=False) as client:
        present = {f.frame_id for f in client.stream_frames("shapes", "drawn")}
        frames = []
        for path in sorted((config.state / "demo" / "images").glob("shapes-*.png")):
            if path.stem not in present:
                continue
            with Image.open(path) as img:
                thumb = np.asarray(img.convert("RGB").resize((8, 8), Image.Resampling.BOX), np.float32) / 255.0
            frame = shoal.LabeledFrame(frame_id=path.stem, update_type="MODIFY")
            frame.add_frame_embedding(embedding=thumb.ravel().round(4).tolist(), model_id="thumbnail-8x8")
            frames.append(frame)
        report = client.update_dataset_frames("shapes", "drawn", frames)
        upload = client.wait_for_upload(report.name, timeout=120, poll_seconds=0.1)
        version = upload.versions[-1]
        print(f"\n== embeddings: {len(frames)} 8x8-thumbnail embeddings (192 values) added as version {version}")
        [near] = client.search("shapes", "drawn", frame_ids=["shapes-0001"], k=5, version=version)
        print("frames most like shapes-0001: " + ", ".join(f"{n.frame_id} ({n.score:.3f})" for n in near))
        chosen = client.select(
            "shapes", "drawn", [{"strategy": "DIVERSITY"}], count=6, version=version, segment_id="diverse-6"
        )
        print(f"6 most diverse frames: {', '.join(chosen.frame_ids)} → segment {chosen.segment.rsplit('/', 1)[1]}")
        backgrounds = {
            f.frame_id: f.user_metadata["background"].string_value for f in client.stream_frames("shapes", "drawn")
        }
        print("their backgrounds: " + ", ".join(backgrounds.get(f, "?") for f in chosen.frame_ids))


def _pose(config: SuiteConfig, key: str) -> None:
    """A pose subset with COCO's rig: the keypoint checks catch planted left-right swaps, a review job is exported in
    Ground Truth's skeleton format, and its output (simulated workers fix two of the swaps) comes back as a version."""
    import json  # noqa: PLC0415

    import shoal  # noqa: PLC0415
    from shoal.demo_pose import IMAGE_SIZE, pose_set  # noqa: PLC0415
    from shoal.sdk import groundtruth  # noqa: PLC0415

    people = pose_set(40, swaps=3, seed=21)
    addresses = {name: f"{config.host}:{ports.grpc_port}" for name, ports in config.services.items()}
    with shoal.Client(api_key=key, addresses=addresses, show_progress=False) as client:
        client.create_project("pose", shoal.LabelClassMap([shoal.ClassMapEntry.coco_person(class_id=0)]))
        dataset = shoal.LabeledDataset()
        for person in people.people:
            frame = shoal.LabeledFrame(frame_id=person.frame_id)
            frame.add_image(
                sensor_id="cam", image_url=people.image_url(person.frame_id), width=IMAGE_SIZE[0], height=IMAGE_SIZE[1]
            )
            left, top, width, height = person.box
            frame.add_label_2d_keypoints(
                sensor_id="cam",
                label_id=person.label_id,
                classification="person",
                keypoints=[{"name": n, "x": x, "y": y, "visibility": 2} for n, (x, y) in person.points.items()],
                top=top,
                left=left,
                width=width,
                height=height,
            )
            dataset.add_frame(frame)
        report = client.create_or_update_dataset("pose", "people", dataset=dataset)
        first = client.wait_for_upload(report.name, timeout=120, poll_seconds=0.1).versions[-1]
        client.create_checkpoint("pose", "people", "to-review")
        print(
            f"\n== pose: {len(people.people)} people with COCO's rig (17 keypoints, 19 edges) as version {first}, "
            f"{len(people.swapped)} with a planted left-right swap"
        )
        found = client.check_keypoints("pose", "people", rules=["swapped_keypoints"])
        ranks = sorted(i + 1 for i, c in enumerate(found) if c.ground_truth_label_id in people.swapped)
        print(f"keypoint checks: {len(found)} swap candidates; the planted ones at ranks {ranks}")
        print(f"  first: {found[0].frame_id}: {found[0].description} (score {found[0].score:.2f})")

        job = groundtruth.export_skeleton_job(client, "pose", "people", class_name="person", checkpoint="to-review")
        manifest, template = job.write(config.state / "demo" / "pose-job")
        print(f"exported a skeleton review job from checkpoint to-review: {len(job.manifest)} images → {manifest.name}")
        print(
            f"  {template.name}: {len(job.template['keypointClasses'])} keypoint classes, "
            f"{len(job.template['skeletonRig'])} rig lines"
        )

        # The workers' output manifest: two of the swaps fixed, every other image confirmed unchanged.
        fixing = sorted(people.swapped)[:2]
        lines = []
        for n, line in enumerate(job.manifest):
            skeletons = json.loads(line["initial_values"])
            fixed = skeletons[0]["name"] in fixing
            if fixed:
                a, b = people.swapped[skeletons[0]["name"]]
                points = {p["label"]: p for p in skeletons[0]["annotations"]}
                points[a]["label"], points[b]["label"] = b, a
            result = {
                "dataset_object_id": str(n),
                "data_object_s3_uri": line["source-ref"],
                "image_file_name": line["source-ref"].rsplit("/", 1)[1],
                "image_s3_location": line["source-ref"],
                "original_annotations": line["initial_values"],
                "updated_annotations": json.dumps(skeletons),
                "worker_id": f"worker-{n % 3 + 1}",
                "no_changes_needed": not fixed,
                "was_modified": fixed,
                "total_time_in_seconds": 40.0 if fixed else 8.0 + n % 5,
            }
            lines.append(
                json.dumps(
                    {
                        "source-ref": line["source-ref"],
                        "pose-review": {"label-results": [result]},
                        "pose-review-metadata": {"type": "groundtruth/custom", "job-name": "pose-review"},
                    }
                )
            )
        output = config.state / "demo" / "pose-job" / "output.manifest"
        output.write_text("\n".join(lines) + "\n")
        imported = groundtruth.import_results(client, "pose", "people", output, class_name="person")
        print(
            f"imported the job's output as version {imported.version}: {imported.frames} frames, "
            f"{imported.labels} labels, {len(imported.errors)} bad lines"
        )
        for row in imported.stats.summary().splitlines():
            print(f"  {row}")
        after = client.check_keypoints("pose", "people", rules=["swapped_keypoints"])
        before = client.check_keypoints("pose", "people", version=first, rules=["swapped_keypoints"])
        print(
            f"swap candidates now: {len(after)} ({', '.join(c.frame_id for c in after)}); "
            f"version {first} still has {len(before)}"
        )


def populate(config: SuiteConfig, key: str) -> None:
    """The demo data, made through the SDK as any client makes it: shapes/drawn (images, boxes, masks, a point
    cloud, a model's predictions, edits over several versions, an evaluation, embeddings, a selection) and
    pose/people (skeletons, keypoint checks, a Ground Truth review round trip)."""
    planted = _upload_demo_data(config, key)
    _edit_over_versions(config, key)
    _evaluate_model(config, key, planted)
    _embeddings(config, key)
    _pose(config, key)


def _leave_running(args: argparse.Namespace) -> bool:
    """From a terminal the demo ends with the suite and console still up (`shoal down` stops them); anywhere else
    (CI, a pipe, `--stop`) it stops as it started."""
    return not getattr(args, "stop", False) and sys.stdin.isatty() and sys.stdout.isatty() and not os.environ.get("CI")


def _console_handover(config: SuiteConfig, key: str, args: argparse.Namespace) -> None:
    """A key for the demo projects, and where to use it: the console on the demo data."""
    import shoal  # noqa: PLC0415

    addresses = {name: f"{config.host}:{ports.grpc_port}" for name, ports in config.services.items()}
    with shoal.Client(api_key=key, addresses=addresses, show_progress=False) as client:
        made = client.create_api_key(["shapes", "pose"], role="WRITER", display_name="demo console")
    default = args.state_dir == str(datacli_state(args))
    stop = "make down" if default else f"shoal down --state-dir {args.state_dir}"
    print("\n== the suite is still running, with the console on the demo data")
    print(f"console:  {config.console_url}/projects/shapes/datasets/drawn/frames")
    print(f"API key:  {made.secret}   (writer on projects shapes and pose; paste it when the console asks)")
    print(f"stop it:  {stop}")


def datacli_state(args: argparse.Namespace) -> Path:
    from shoal import datacli  # noqa: PLC0415

    return datacli.state_dir(argparse.Namespace(state_dir=None))


def run_demo(args: argparse.Namespace, up: Command, down: Command) -> int:
    leave_running = _leave_running(args)
    own_state = args.state_dir is None
    if own_state:
        # Left running, the suite lives where `shoal down` (and `make down`) look for it.
        args.state_dir = str(datacli_state(args)) if leave_running else tempfile.mkdtemp(prefix="shoal-demo-")
    print(f"== shoal up (state in {args.state_dir})")
    code = up(args)
    if code != 0:
        return code
    try:
        config = SuiteConfig.load(Path(args.state_dir).resolve())
        key = os.environ.get("SHOAL_ADMIN_API_KEY") or (config.state / ADMIN_KEY_FILE).read_text().strip()
        print("\n== every service describes itself through reflection")
        for name in SERVICES:
            target = f"{config.host}:{config.services[name].grpc_port}"
            shoal_services = [s for s in _reflected_services(target) if s.startswith("shoal.")]
            print(f"{name:<12}{', '.join(shoal_services)}")
        target = f"{config.host}:{config.services['versioning'].grpc_port}"
        with grpc.insecure_channel(target) as channel:
            stub = versioning_service_pb2_grpc.VersioningServiceStub(channel)
            print("\n== a call without an API key")
            try:
                stub.ListProjects(versioning_service_pb2.ListProjectsRequest(), timeout=5)
            except grpc.RpcError as err:
                info = unpack(err)
                print(f"{info.code.name}: {info.message} (reason {info.reason})")
            print("== the same call with the admin key")
            reply = stub.ListProjects(
                versioning_service_pb2.ListProjectsRequest(), metadata=(("x-api-key", key),), timeout=5
            )
            print(f"OK: {len(reply.projects)} projects")
        populate(config, key)
        print("\n== request metrics of the versioning service")
        metrics_url = f"http://{config.host}:{config.services['versioning'].metrics_port}/metrics"
        print(_handled_total(metrics_url))
        if leave_running:
            _console_handover(config, key, args)
            return 0
    except BaseException:
        leave_running = False
        raise
    finally:
        if not leave_running:
            print("\n== shoal down")
            down_code = down(args)
    return down_code
