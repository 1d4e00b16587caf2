"""Rows written by the reference client itself (tests/data/reference_client, made by its generate.py) read into what
the client was given, field by field: every frame, label, metadata value and type, attribute name, geo value,
coordinate frame and confidence.

`expected_*` turn the calls the generator made on the client (kept in expected.json) into plain values, by the
client's documented defaults and Shoal's way of storing them; `actual_*` turn Shoal's messages into the same plain
values. The integration test (tests/integration/test_reference_rows_suite.py) compares what a real suite stored the
same way.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from shoal.sdk import serialized
from shoal.sdk.frames import metadata_kind
from shoal.v1 import common_pb2, frame_pb2, label_pb2

DATA = Path(__file__).resolve().parents[1] / "data" / "reference_client"
EXPECTED: dict[str, Any] = json.loads((DATA / "expected.json").read_text())
ROOT = "world"  # the client's root frame: Shoal's empty coordinate frame id
DEFAULT_SENSOR = "DEFAULT"  # the client's sensor id when none is given
DEFAULT_DEVICE = "default_device"  # the client's device id when none is given (kept: the rows cannot tell)
VISIBILITY = {0: "NOT_LABELED", 1: "OCCLUDED", 2: "VISIBLE"}  # COCO's flags; the SDK reads a missing one as 2


# ---- what the client was given -----------------------------------------------------------------------------------


def _type_of(value: Any) -> str:
    return {bool: "bool", int: "int", float: "float", str: "str"}[type(value)]


def _typed(value: Any, val_type: str | None = None, *, is_list: bool = False) -> tuple[str, Any]:
    """(type, value) of a metadata value or attribute; lists are "list:<element>", an empty list is stored as a null
    of its list type (as Shoal's SDK stores it), a null keeps its type."""
    if is_list or isinstance(value, list):
        element = val_type or _type_of(value[0])
        return f"list:{element}", (list(value) or None) if value is not None else None
    return (val_type or _type_of(value)), value


def _date(text: str | None) -> datetime | None:
    if text is None:
        return None
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)  # the client's own are naive: read as UTC


def _frame_ref(coord_frame_id: str | None) -> str:
    return "" if coord_frame_id in (None, ROOT) else str(coord_frame_id)


def _pose(args: Mapping[str, Any]) -> dict[str, Any]:
    p = args.get("position") or {"x": 0, "y": 0, "z": 0}
    o = args.get("orientation") or {"w": 1, "x": 0, "y": 0, "z": 0}
    return {"position": (p["x"], p["y"], p["z"]), "orientation": (o["w"], o["x"], o["y"], o["z"])}


def _confidence(value: float | None) -> float | None:
    return None if value is None else float(np.float32(value))  # a float in Shoal's contract


_LABEL_CALLS = {
    "2d_bbox", "2d_line_segment", "3d_cuboid", "2d_keypoints", "2d_polygon_list", "2d_semseg", "2d_instance_seg",
    "2d_classification", "3d_classification", "text_token",
}  # fmt: skip


def expected_label(call: str, a: Mapping[str, Any]) -> dict[str, Any]:
    kind = call.removeprefix("add_label_").removeprefix("add_inference_")
    scene = kind in {"3d_cuboid", "3d_classification"}
    label: dict[str, Any] = {
        "class": a.get("classification", ""),  # masks: the client's class "__mask" is no class
        "sensor": "" if scene else a.get("sensor_id", DEFAULT_SENSOR),
        "frame": _frame_ref(a.get("coord_frame_id")) if scene else "",
        "confidence": _confidence(a.get("confidence")),
        "attributes": {k: _typed(v) for k, v in (a.get("user_attrs") or {}).items()},
    }
    if kind == "2d_bbox":
        box = {k: a[k] for k in ("left", "top", "width", "height")}
        label["geometry"] = ("box_2d", box | {"iscrowd": bool(a.get("iscrowd"))})
    elif kind == "2d_line_segment":
        label["geometry"] = ("line_segment_2d", {"start": (a["x1"], a["y1"]), "end": (a["x2"], a["y2"])})
    elif kind == "3d_cuboid":
        geometry = {"position": tuple(a["position"]), "dimensions": tuple(a["dimensions"])}
        label["geometry"] = ("cuboid_3d", geometry | {"rotation": tuple(a["rotation"])})  # x, y, z, w
    elif kind == "2d_keypoints":
        points = [(k["name"], k["x"], k["y"], VISIBILITY[k.get("visibility", 2)]) for k in a["keypoints"]]
        box = tuple(a[k] for k in ("left", "top", "width", "height")) if a.get("width") is not None else None
        label["geometry"] = ("keypoints_2d", {"keypoints": points, "box": box})
    elif kind == "2d_polygon_list":
        polygons = [[tuple(v) for v in p["vertices"]] for p in a["polygons"]]
        label["geometry"] = ("polygon_list_2d", {"polygons": polygons})
    elif kind == "2d_semseg":
        label["geometry"] = ("semantic_segmentation_2d", {"mask_url": a["mask_url"]})
    elif kind == "2d_instance_seg":
        instances = [(m["id"], m["classification"]) for m in a["instance_mapping"]]
        label["geometry"] = ("instance_segmentation_2d", {"mask_url": a["mask_url"], "instances": instances})
    elif kind == "2d_classification":
        secondary = {k: str(v) for k, v in (a.get("secondary_labels") or {}).items()}
        label["geometry"] = ("classification_2d", {"secondary_labels": secondary})
    elif kind == "3d_classification":
        label["geometry"] = ("classification_3d", {})
    else:
        label["geometry"] = ("text_token", {"index": a["index"], "token": a["token"], "visible": a["visible"]})
    return label


def _expected_sensor(call: str, a: Mapping[str, Any]) -> dict[str, Any]:
    sensor_id = a.get("sensor_id", DEFAULT_SENSOR)
    sensor: dict[str, Any] = {"id": sensor_id, "frame": _frame_ref(a.get("coord_frame_id"))}
    if call == "add_image":
        sensor["data"] = ("image", {"url": a["image_url"], "preview_url": a.get("preview_url") or ""})
        sensor["size"] = (a.get("width") or 0, a.get("height") or 0)
    elif call == "add_point_cloud_pcd":
        sensor["data"] = ("point_cloud_pcd", {"url": a["pcd_url"]})
    elif call == "add_point_cloud_bins":
        # Shoal's binary clouds are KITTI-like: the client's kitti_format_url is one.
        urls = {"pointcloud_url": a.get("pointcloud_url") or a.get("kitti_format_url")}
        sensor["data"] = ("point_cloud_bins", urls | {k: a.get(k) or "" for k in ("intensity_url", "range_url")})
    elif call == "add_obj":
        sensor["data"] = ("obj_mesh", {"url": a["obj_url"]})
    elif call == "add_audio":
        sensor["data"] = ("audio", {"url": a["audio_url"]})
    elif call == "add_video":
        sensor["data"] = ("video", {"url": a["video_url"]})
    else:
        sensor["data"] = ("text", {"text": a["text"]})
    if "date_captured" in a:  # the client fills in "now" for the rest
        sensor["date"] = _date(a["date_captured"])
    return sensor


def _expected_coordinate_frame(call: str, a: Mapping[str, Any]) -> dict[str, Any]:
    cf: dict[str, Any] = {"id": a["coord_frame_id"], "parent": _frame_ref(a.get("parent_frame_id")), **_pose(a)}
    if call == "add_coordinate_frame_3d":
        return cf | {"kind": "3d"}
    fields = ("fx", "fy", "k1", "k2", "k3", "k4", "k5", "k6", "p1", "p2", "s1", "s2", "s3", "s4", "skew")
    camera = {f: a.get(f) or 0 for f in fields} | {"cx": a.get("cx"), "cy": a.get("cy")}
    camera["model"] = a.get("camera_model") or "brown_conrady"
    camera["matrix"] = [v for row in a.get("camera_matrix") or [] for v in row]
    return cf | {"kind": "2d", "camera": camera}


def expected_frame(entry: Mapping[str, Any]) -> dict[str, Any]:
    """A labeled frame as the generator gave it to the client."""
    init = entry["init"]
    frame: dict[str, Any] = {
        "device_id": init.get("device_id", DEFAULT_DEVICE),
        "coordinate_frames": [],
        "sensors": [],
        "metadata": {},
        "geo": None,
        "labels": {},
    }
    if "date_captured" in init:
        frame["date"] = _date(init["date_captured"])
    for c in entry["calls"]:
        call, a = c["call"], c["args"]
        if call.startswith("add_coordinate_frame_"):
            frame["coordinate_frames"].append(_expected_coordinate_frame(call, a))
        elif call in {"add_image", "add_point_cloud_pcd", "add_point_cloud_bins", "add_obj", "add_audio",
                      "add_video", "add_text"}:  # fmt: skip
            frame["sensors"].append(_expected_sensor(call, a))
        elif call == "add_user_metadata":
            frame["metadata"][a["key"]] = _typed(a["val"], a.get("val_type"))
        elif call == "add_user_metadata_list":
            frame["metadata"][a["key"]] = _typed(a["val"], a.get("list_elt_type"), is_list=True)
        elif call == "add_geo_latlong_data":
            frame["geo"] = (a["lat"], a["lon"])
        elif call.removeprefix("add_label_") in _LABEL_CALLS:
            frame["labels"][a["label_id"]] = expected_label(call, a)
        else:
            raise AssertionError(f"the test does not know {call}")
    return frame


def expected_inference(entry: Mapping[str, Any]) -> dict[str, Any]:
    """An inference frame as the generator gave it to the client."""
    frame: dict[str, Any] = {"labels": {}, "metrics": {}, "metadata": {}}
    for c in entry["calls"]:
        call, a = c["call"], c["args"]
        if call.removeprefix("add_inference_") in _LABEL_CALLS:
            frame["labels"][a["label_id"]] = expected_label(call, a)
        elif call == "add_custom_metric":
            frame["metrics"][a["name"]] = a["value"]
        elif call == "add_user_metadata":
            frame["metadata"][a["key"]] = _typed(a["val"])
        else:
            raise AssertionError(f"the test does not know {call}")
    return frame


# ---- what Shoal holds --------------------------------------------------------------------------------------------

_TYPE_NAMES = {"string": "str", "int": "int", "float": "float", "bool": "bool"}


def actual_value(value: common_pb2.MetadataValue) -> tuple[str, Any]:
    kind = metadata_kind(value)
    is_list = kind.endswith("_list_value")
    type_name = _TYPE_NAMES[kind.removesuffix("_value").removesuffix("_list")]
    if value.WhichOneof("kind") == "null_value":
        return (f"list:{type_name}" if is_list else type_name), None
    data = getattr(value, kind)
    return (f"list:{type_name}", list(data.values)) if is_list else (type_name, data)


def actual_label(label: label_pb2.Label) -> dict[str, Any]:
    kind = label.WhichOneof("geometry")
    g = getattr(label, kind or "")
    if kind == "box_2d":
        geometry = {"left": g.left, "top": g.top, "width": g.width, "height": g.height, "iscrowd": g.iscrowd}
    elif kind == "line_segment_2d":
        geometry = {"start": (g.start.x, g.start.y), "end": (g.end.x, g.end.y)}
    elif kind == "cuboid_3d":
        geometry = {
            "position": (g.position.x, g.position.y, g.position.z),
            "dimensions": (g.dimensions.x, g.dimensions.y, g.dimensions.z),
            "rotation": (g.rotation.x, g.rotation.y, g.rotation.z, g.rotation.w),
        }
    elif kind == "keypoints_2d":
        points = [
            (k.name, k.x, k.y, label_pb2.KeypointVisibility.Name(k.visibility).removeprefix("KEYPOINT_VISIBILITY_"))
            for k in g.keypoints
        ]
        box = (g.box.left, g.box.top, g.box.width, g.box.height) if g.HasField("box") else None
        geometry = {"keypoints": points, "box": box}
    elif kind == "polygon_list_2d":
        geometry = {"polygons": [[(v.x, v.y) for v in p.vertices] for p in g.polygons]}
    elif kind == "semantic_segmentation_2d":
        geometry = {"mask_url": g.mask_url}
    elif kind == "instance_segmentation_2d":
        geometry = {"mask_url": g.mask_url, "instances": [(i.id, i.classification) for i in g.instances]}
    elif kind == "classification_2d":
        geometry = {"secondary_labels": dict(g.secondary_labels)}
    elif kind == "classification_3d":
        geometry = {}
    else:
        geometry = {"index": g.index, "token": g.token, "visible": g.visible}
    return {
        "class": label.classification,
        "sensor": label.sensor_id,
        "frame": label.coordinate_frame_id,
        "confidence": label.confidence if label.HasField("confidence") else None,
        "attributes": {k: actual_value(v) for k, v in label.attributes.items()},
        "geometry": (kind, geometry),
    }


def _moment(ts: Any) -> datetime:
    return ts.ToDatetime(tzinfo=UTC)  # type: ignore[no-any-return]


def actual_frame(frame: frame_pb2.Frame) -> dict[str, Any]:
    coordinate_frames = []
    for cf in frame.coordinate_frames:
        kind = cf.WhichOneof("kind")
        c = cf.frame_2d if kind == "frame_2d" else cf.frame_3d
        p, o = c.position, c.orientation
        out: dict[str, Any] = {
            "id": cf.coordinate_frame_id,
            "parent": cf.parent_frame_id,
            "position": (p.x, p.y, p.z),
            "orientation": (o.w, o.x, o.y, o.z),
            "kind": "2d" if kind == "frame_2d" else "3d",
        }
        if kind == "frame_2d":
            fields = ("fx", "fy", "k1", "k2", "k3", "k4", "k5", "k6", "p1", "p2", "s1", "s2", "s3", "s4", "skew")
            camera = {f: getattr(c, f) for f in fields}
            camera |= {axis: getattr(c, axis) if c.HasField(axis) else None for axis in ("cx", "cy")}
            camera["model"] = frame_pb2.CameraModel.Name(c.camera_model).removeprefix("CAMERA_MODEL_").lower()
            camera["matrix"] = list(c.camera_matrix)
            out["camera"] = camera
        coordinate_frames.append(out)
    sensors = []
    for s in frame.sensors:
        kind = s.WhichOneof("data")
        d = getattr(s, kind or "")
        sensor: dict[str, Any] = {"id": s.sensor_id, "frame": s.coordinate_frame_id}
        if kind == "image":
            sensor["data"] = (kind, {"url": d.url, "preview_url": d.preview_url})
            sensor["size"] = (d.width, d.height)
        elif kind == "point_cloud_bins":
            urls = {"pointcloud_url": d.pointcloud_url, "intensity_url": d.intensity_url, "range_url": d.range_url}
            sensor["data"] = (kind, urls)
        elif kind == "text":
            sensor["data"] = (kind, {"text": d.text})
        else:
            sensor["data"] = (kind, {"url": d.url})
        sensor["date"] = _moment(s.date_captured) if s.HasField("date_captured") else None
        sensors.append(sensor)
    return {
        "device_id": frame.device_id,
        "date": _moment(frame.date_captured) if frame.HasField("date_captured") else None,
        "coordinate_frames": coordinate_frames,
        "sensors": sensors,
        "metadata": {k: actual_value(v) for k, v in frame.user_metadata.items()},
        "geo": (frame.geo.latitude, frame.geo.longitude) if frame.HasField("geo") else None,
        "labels": {label.label_id: actual_label(label) for label in frame.labels},
    }


def actual_inference(frame: frame_pb2.InferenceFrame) -> dict[str, Any]:
    metrics: dict[str, Any] = {}
    for name, metric in frame.custom_metrics.items():
        if metric.WhichOneof("value") == "objective":
            metrics[name] = metric.objective
        else:
            m = metric.confusion_matrix
            metrics[name] = [list(m.values[r * m.columns : (r + 1) * m.columns]) for r in range(m.rows)]
    return {
        "labels": {label.label_id: actual_label(label) for label in frame.labels},
        "metrics": metrics,
        "metadata": {k: actual_value(v) for k, v in frame.user_metadata.items()},
    }


def assert_same(frame_id: str, expected: Mapping[str, Any], actual: Mapping[str, Any]) -> None:
    """Field by field (label by label), so that a difference names its frame, label and field."""
    assert set(actual) >= set(expected), frame_id
    for key, want in expected.items():
        got = actual[key]
        if key == "sensors":
            assert [s["id"] for s in got] == [s["id"] for s in want], f"{frame_id} sensors"
            for w, g in zip(want, got, strict=True):
                for field, value in w.items():
                    assert g[field] == value, f"{frame_id} sensor {w['id']} {field}"
                if "date" not in w:
                    assert g["date"] is not None, f"{frame_id} sensor {w['id']}: the client's own capture time"
        elif key == "labels":
            assert sorted(got) == sorted(want), f"{frame_id} label ids"
            for label_id, w in want.items():
                for field, value in w.items():
                    assert got[label_id][field] == value, f"{frame_id} label {label_id} {field}"
        elif key in {"metadata", "metrics"}:
            assert sorted(got) == sorted(want), f"{frame_id} {key} names"
            for name, value in want.items():
                assert got[name] == value, f"{frame_id} {key} {name}"
        else:
            assert got == want, f"{frame_id} {key}"
    if "date" in actual and "date" not in expected:
        assert actual["date"] is not None, f"{frame_id}: the client's own capture time"


def expected_frames() -> dict[str, dict[str, Any]]:
    return {e["frame_id"]: expected_frame(e) for e in EXPECTED["frames"]}


def expected_inferences() -> dict[str, dict[str, Any]]:
    return {e["frame_id"]: expected_inference(e) for e in EXPECTED["inferences"]}


def counts(frames: Sequence[Mapping[str, Any]]) -> tuple[int, int]:
    return len(frames), sum(len(f["labels"]) for f in frames)


# ---- reading -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", ["labeled_inline.jsonl", "labeled_split.jsonl"])
def test_every_frame_reads_to_what_the_client_was_given(shape: str) -> None:
    result = serialized.read(DATA / shape)
    assert (result.rejected, result.not_kept) == ([], [])
    want = expected_frames()
    got = {f.frame_id: f for f in result.frames if isinstance(f, frame_pb2.Frame)}
    assert list(got) == list(want)
    for frame_id, frame in got.items():
        assert frame.change_type == frame_pb2.CHANGE_TYPE_ADD
        assert_same(frame_id, want[frame_id], actual_frame(frame))
    assert counts(list(want.values())) == (40, 210)


def test_every_prediction_reads_to_what_the_client_was_given() -> None:
    result = serialized.read(DATA / "inferences.jsonl")
    assert (result.frames, result.rejected, result.not_kept) == ([], [], [])
    want = expected_inferences()
    got = {f.frame_id: f for f in result.inference_frames}
    assert list(got) == list(want)
    for frame_id, frame in got.items():
        assert_same(frame_id, want[frame_id], actual_inference(frame))
        assert all(label.HasField("confidence") for label in frame.labels)
    assert counts(list(want.values())) == (40, 180)


def test_the_data_covers_every_label_and_metadata_type() -> None:
    frames, inferences = expected_frames().values(), expected_inferences().values()
    geometries = {label["geometry"][0] for f in frames for label in f["labels"].values()}
    assert geometries == {f.name for f in label_pb2.Label.DESCRIPTOR.oneofs_by_name["geometry"].fields}
    predicted = {label["geometry"][0] for f in inferences for label in f["labels"].values()}
    assert predicted == geometries - {"semantic_segmentation_2d", "instance_segmentation_2d"}  # see the edge rows
    types = {value[0] for f in frames for value in f["metadata"].values()}
    types |= {value[0] for f in frames for label in f["labels"].values() for value in label["attributes"].values()}
    assert types == {"str", "int", "float", "bool", "list:str", "list:int", "list:float", "list:bool"}
    assert any(value[1] is None for f in frames for value in f["metadata"].values())  # typed nulls, lists too
    sensors = {s["data"][0] for f in frames for s in f["sensors"]}
    assert sensors == {f.name for f in frame_pb2.SensorData.DESCRIPTOR.oneofs_by_name["data"].fields} - {
        "image_overlay"
    }
    kinds = {(cf["kind"], cf.get("camera", {}).get("model")) for f in frames for cf in f["coordinate_frames"]}
    assert kinds == {("3d", None), ("2d", "brown_conrady"), ("2d", "fisheye")}


def test_the_default_image_frame_stays_the_images_own_2d_frame() -> None:
    """The client gives an image naming no frame a frame of its own (type IMAGE): in Shoal that is the sensor's empty
    coordinate frame id, as the SDK stores it; nothing 3-D is declared for it. The root `world` is Shoal's empty id."""
    rows = serialized.read_jsonl(DATA / "labeled_inline.jsonl")
    assert {"coordinate_frame_id": "cam", "coordinate_frame_type": "IMAGE"} in rows[0]["coordinate_frames"]
    frames = serialized.read_frames(rows)
    camera = frames[0]
    assert list(camera.coordinate_frames) == []
    assert [(s.sensor_id, s.coordinate_frame_id) for s in camera.sensors] == [("cam", "")]
    drive = frames[1]
    assert [cf.coordinate_frame_id for cf in drive.coordinate_frames] == ["ego", "lidar-mount", "front-cam",
                                                                           "side-cam", "rear-cam"]  # fmt: skip
    assert [cf.parent_frame_id for cf in drive.coordinate_frames] == ["", "ego", "ego", "ego", ""]
    assert {s.sensor_id: s.coordinate_frame_id for s in drive.sensors}["radar"] == ""


def test_metadata_and_attribute_names_are_the_users() -> None:
    frame = serialized.read_frames(serialized.read_jsonl(DATA / "labeled_split.jsonl"))[0]
    assert "user__weather" not in frame.user_metadata
    assert actual_value(frame.user_metadata["tags"]) == ("list:str", ["urban"])
    box = next(label for label in frame.labels if label.label_id == "ref-0000-box-0")
    assert sorted(box.attributes) == sorted(["occluded", "truncation", "annotator", "track_id", "colors",
                                             "visible_parts", "ious", "checks"])  # fmt: skip
    polygon = next(label for label in frame.labels if label.label_id == "ref-0000-poly-0")
    assert list(polygon.attributes) == ["annotator"]  # the client's `center: null` is no attribute


def test_the_streaming_split_reads_to_the_same_frames_in_any_order() -> None:
    inline = serialized.read(DATA / "labeled_inline.jsonl").frames
    rows = serialized.read_jsonl(DATA / "labeled_split.jsonl")
    assert sum(1 for row in rows if row.get("type") == "GT") == 40  # one crop row per frame, all its labels
    assert serialized.read_frames(rows) == inline
    assert serialized.read_frames(list(reversed(rows))) == list(reversed(inline))


def test_written_rows_read_back_to_the_same_messages() -> None:
    frames = serialized.read_frames(serialized.read_jsonl(DATA / "labeled_inline.jsonl"))
    for split in (False, True):
        assert serialized.read_frames(list(serialized.write_frames(frames, split=split))) == frames
    inferences = serialized.read(DATA / "inferences.jsonl").inference_frames
    again = serialized.read_rows(("<rows>", n, row) for n, row in enumerate(serialized.write_inferences(inferences)))
    assert (again.inference_frames, again.rejected, again.not_kept) == (inferences, [], [])


def test_written_rows_have_the_clients_shape() -> None:
    """Shoal's rows for the frames it read are the client's rows, bar what the client fills in by itself (Shoal writes
    every camera field, and an empty list as a null of its type, as it stores it)."""
    client_rows = serialized.read_jsonl(DATA / "labeled_inline.jsonl")
    ours = list(serialized.write_frames(serialized.read_frames(client_rows)))
    for theirs, mine in zip(client_rows, ours, strict=True):
        assert set(mine) <= set(theirs)
        # The same frames (parents first; the client's order is its calls'), with the same given values.
        declared = {cf["coordinate_frame_id"]: cf for cf in theirs["coordinate_frames"]}
        assert sorted(declared) == sorted(cf["coordinate_frame_id"] for cf in mine["coordinate_frames"])
        for cf in mine["coordinate_frames"]:
            given = declared[cf["coordinate_frame_id"]]
            assert cf["coordinate_frame_type"] == given["coordinate_frame_type"]
            meta = json.loads(given.get("coordinate_frame_metadata") or "{}")
            written = json.loads(cf.get("coordinate_frame_metadata") or "{}")
            assert {k: v for k, v in written.items() if k in meta} == meta
        assert [s["coordinate_frame"] for s in mine["sensor_data"]] == [
            s["coordinate_frame"] for s in theirs["sensor_data"]
        ]
        metadata = {k: (v if v != [] else None) for k, v in theirs.items() if k.startswith("user_")}
        assert {k: v for k, v in mine.items() if k.startswith("user_")} == metadata
        assert [(e["uuid"], e["label_type"], e["label"], e["label_coordinate_frame"]) for e in mine["label_data"]] == [
            (e["uuid"], e["label_type"], e["label"], e["label_coordinate_frame"]) for e in theirs["label_data"]
        ]


# ---- what cannot be taken ----------------------------------------------------------------------------------------


def test_rows_shoal_cannot_take_are_reported_by_line_and_nothing_else_is_dropped() -> None:
    path = DATA / "edge_labeled.jsonl"
    result = serialized.read(path)
    why = {e["frame_id"]: e["why"] for e in EXPECTED["edge_frames"]}
    rejected = {(issue.line, issue.frame_id): issue.reason for issue in result.rejected}
    assert sorted(rejected) == [(1, "edge-mask-data"), (2, "edge-instance-data"), (3, "edge-null-attr"),
                                (4, "edge-empty-attr")]  # fmt: skip
    assert "mask was given as data" in rejected[1, "edge-mask-data"]
    assert "mask was given as data" in rejected[2, "edge-instance-data"]
    assert "'occluded'" in rejected[3, "edge-null-attr"]
    assert "type" in rejected[3, "edge-null-attr"]
    assert "'colors'" in rejected[4, "edge-empty-attr"]
    assert all(issue.source == str(path) for issue in result.rejected + result.not_kept)
    # The rest is imported, and each part with no place in Shoal is named, on its line.
    assert [f.frame_id for f in result.frames] == ["edge-extras", "edge-fine"]
    assert {issue.line for issue in result.not_kept} == {5}
    notes = " | ".join(issue.reason for issue in result.not_kept)
    for part in ("overlay id 'heat'", "resize_mode 'fill'", "polygons of a keypoints label",
                 "center of a keypoints label", "center of a polygon list", "links ['parent']",
                 "iscrowd on a line segment", "a mask's resize_mode", "attributes ['parked'] of instance"):  # fmt: skip
        assert part in notes, part
    extras = actual_frame(result.frames[0])  # type: ignore[arg-type]
    assert len(extras["labels"]) == 6
    assert extras["labels"]["edge-extras-inst"]["geometry"][1]["instances"] == [(3, "car")]
    assert "edge-fine" in why


def test_malformed_and_orphan_rows_are_reported_by_line(tmp_path: Path) -> None:
    rows = serialized.read_jsonl(DATA / "labeled_split.jsonl")
    crop = next(row for row in rows if row.get("type") == "GT")
    path = tmp_path / "rows.jsonl"
    lines = [json.dumps(rows[0]), "{not json", json.dumps(crop | {"task_id": "nobody"}), "[1, 2]",
             json.dumps(rows[0]), json.dumps({"label_data": []})]  # fmt: skip
    path.write_text("\n".join(lines) + "\n")
    result = serialized.read(path)
    assert [(i.line, i.frame_id) for i in result.rejected] == [(2, ""), (4, ""), (5, "ref-0000"), (6, ""),
                                                               (3, "nobody")]  # fmt: skip
    assert "not JSON" in result.rejected[0].reason
    assert "second frame row" in result.rejected[2].reason
    assert "no frame row" in result.rejected[4].reason
    assert [f.frame_id for f in result.frames] == ["ref-0000"]
    with pytest.raises(serialized.RowsRejectedError, match=r"<rows>:2"):
        serialized.read_frames([rows[0], {"task_id": "x", "label_data": [{"label_type": "NOPE", "uuid": "u"}],
                                          "type": "GT"}])  # fmt: skip


def test_modify_and_delete_rows_become_a_modify_a_label_update_and_a_delete() -> None:
    """The client's MODIFY sets what was given on it (it lists those keys) and may add labels; in Shoal a MODIFY leaves
    labels alone and a label update adds them. Its DELETE is a frame row and an empty crop row."""
    result = serialized.read(DATA / "updates_split.jsonl")
    assert (result.rejected, result.not_kept) == ([], [])
    modify, update, deleted = result.frames
    given = EXPECTED["updates"][0]
    want = expected_frame({"init": {}, "calls": [c for c in given["calls"] if "metadata" in c["call"]]})
    assert isinstance(modify, frame_pb2.Frame)
    assert modify.change_type == frame_pb2.CHANGE_TYPE_MODIFY
    assert actual_frame(modify)["metadata"] == want["metadata"]
    assert not modify.HasField("date_captured")
    assert not modify.device_id
    assert (list(modify.sensors), list(modify.coordinate_frames), list(modify.labels)) == ([], [], [])
    assert isinstance(update, label_pb2.LabelUpdate)
    assert update.frame_id == "ref-0000"
    label = next(c for c in given["calls"] if c["call"] == "add_label_2d_bbox")
    assert [actual_label(x) for x in update.labels] == [expected_label(label["call"], label["args"])]
    assert isinstance(deleted, frame_pb2.Frame)
    assert deleted.change_type == frame_pb2.CHANGE_TYPE_DELETE
    assert deleted == frame_pb2.Frame(frame_id="ref-0001", change_type=frame_pb2.CHANGE_TYPE_DELETE)


def test_read_frames_refuses_what_is_not_a_frame_rather_than_drop_it() -> None:
    updates = serialized.read_jsonl(DATA / "updates_split.jsonl")
    with pytest.raises(serialized.RowsRejectedError, match="label update") as err:
        serialized.read_frames(updates)
    assert {issue.frame_id for issue in err.value.rejected} == {"ref-0000"}
    predictions = serialized.read_jsonl(DATA / "inferences.jsonl")[:2]
    with pytest.raises(serialized.RowsRejectedError, match="an inference row") as err:
        serialized.read_frames(predictions)
    assert [issue.line for issue in err.value.rejected] == [1, 2]
