"""Rows written by the reference client itself (aquariumlearning 0.0.67), for the tests of Shoal's importer.

Run by hand, never by the tests, with the client installed in a throwaway virtual environment outside the repository
(its pinned `bs4==0.0.1` is not on the index and its `urllib3` must be older than 2, so it goes in without its
dependencies and they follow):

    python3 -m venv /tmp/refclient-venv
    /tmp/refclient-venv/bin/pip install --no-deps aquariumlearning==0.0.67
    /tmp/refclient-venv/bin/pip install requests "urllib3<2" pyarrow pandas numpy "google-resumable-media<2" tqdm \
        termcolor importlib-metadata typing-extensions google-cloud-storage joblib scikit-learn dill beautifulsoup4 pillow
    /tmp/refclient-venv/bin/python tests/data/reference_client/generate.py

Importing the client asks its package index for a newer version over HTTP; offline that request fails, so this script
answers it with a refusal (the client then carries on) while the import runs, and leaves the library untouched.

The frames are built through the client's public builders, and the rows are written by the client's own writers:
`Dataset.write_to_file` (the batch pipeline: labels inline, one row per frame), `write_frames_to_file_streaming`
followed by `write_labels_to_file_streaming` (the streaming pipeline: a frame row per frame, then a crop row per
frame holding all its labels) and `Inferences.write_to_file`. It writes, next to itself:

    labeled_inline.jsonl    ground truth, batch shape
    labeled_split.jsonl     the same ground truth, streaming shape
    inferences.jsonl        predictions on those frames
    updates_split.jsonl     a MODIFY (metadata, one more label) and a DELETE of those frames, streaming shape
    edge_labeled.jsonl      frames with parts Shoal cannot take (mask data, untyped nulls) or has no place for
    edge_inferences.jsonl   predictions with such parts
    expected.json           every call made on the client, with its arguments, per frame: what the client was given

Everything is deterministic except what the client fills in itself (capture times left out default to "now").
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CLIENT = "aquariumlearning==0.0.67"


def _import_client() -> Any:
    """The client, imported with its version check (one HTTP GET at import time) answered offline."""
    import requests

    class _Refused:
        status_code = 503
        text = ""

    real_get = requests.get
    requests.get = lambda *args, **kwargs: _Refused()  # type: ignore[assignment]
    try:
        import aquariumlearning
    finally:
        requests.get = real_get
    return aquariumlearning


def _plain(value: Any) -> Any:
    """A call argument as JSON (tuples become lists; the tuple itself is recorded where it matters)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "tolist"):
        return value.tolist()
    return value


class Recorded:
    """A client builder whose calls are recorded (name and keyword arguments) before they are made."""

    def __init__(self, target: Any, log: list[dict[str, Any]]) -> None:
        self.target = target
        self.log = log

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.target, name)

        def call(**kwargs: Any) -> Any:
            self.log.append({"call": name, "args": _plain(kwargs)})
            return method(**kwargs)

        return call


# ---- ground truth ------------------------------------------------------------------------------------------------

WEATHER = ["rain", "sun", "fog", "snow"]


def _metadata(f: Recorded, i: int) -> None:
    """Every metadata type the client has: scalars, lists (from lists and from tuples), typed nulls, empty lists."""
    f.add_user_metadata(key="weather", val=WEATHER[i % 4])
    f.add_user_metadata(key="speed_kmh", val=12.5 + i)
    f.add_user_metadata(key="lane", val=i % 3)
    f.add_user_metadata(key="night", val=i % 2 == 1)
    f.add_user_metadata(key="exposure", val=0.25 * (i + 1), val_type="float")
    f.add_user_metadata(key="reviewer", val=None if i % 3 == 0 else f"rev-{i % 5}", val_type="str")
    f.add_user_metadata(key="frame_index", val=None if i % 4 == 1 else i, val_type="int")
    f.add_user_metadata(key="calibrated", val=None if i % 5 == 2 else i % 2 == 0, val_type="bool")
    f.add_user_metadata(key="ratio", val=None if i % 6 == 3 else i / 7, val_type="float")
    f.add_user_metadata_list(key="tags", val=["urban", "night"][: 1 + i % 2])
    f.add_user_metadata_list(key="lane_ids", val=tuple(range(i % 4 + 1)))
    f.add_user_metadata_list(key="scores", val=[0.5, 0.25 + i / 100], list_elt_type="float")
    f.add_user_metadata_list(key="checks", val=[True, i % 2 == 0])
    f.add_user_metadata_list(key="notes", val=[] if i % 2 else ["checked"], list_elt_type="str")
    f.add_user_metadata_list(key="retries", val=None if i % 3 == 1 else [i, i + 1], list_elt_type="int")
    if i % 3 != 2:
        f.add_geo_latlong_data(lat=37.7 + i / 1000, lon=-122.4 - i / 1000)


def _attrs(i: int, n: int) -> dict[str, Any]:
    """User attributes of every type a label takes."""
    return {
        "occluded": (i + n) % 2 == 0,
        "truncation": 0.125 * ((i + n) % 8),
        "annotator": f"ann-{(i + n) % 3}",
        "track_id": 100 * i + n,
        "colors": ["red", "blue"][: 1 + n % 2],
        "visible_parts": [1, 2, 3][: 1 + (i + n) % 3],
        "ious": [0.5, 0.75],
        "checks": [True, False],
    }


def _camera_frame(f: Recorded, i: int, fid: str) -> None:
    """An image in its own (default) IMAGE frame, with every 2-D label type."""
    f.add_image(
        sensor_id="cam",
        image_url=f"s3://shoal-ref/{fid}/cam.jpg",
        preview_url=f"s3://shoal-ref/{fid}/cam_small.jpg",
        date_captured=f"2026-03-01T10:{i % 60:02d}:00.250000Z",
        width=1920,
        height=1080,
    )
    f.add_label_2d_bbox(
        sensor_id="cam", label_id=f"{fid}-box-0", classification="car", top=100 + i, left=200.5, width=300,
        height=150.25, user_attrs=_attrs(i, 0),
    )  # fmt: skip
    f.add_label_2d_bbox(
        sensor_id="cam", label_id=f"{fid}-box-1", classification="person", top=10.0, left=20.0, width=30.0,
        height=60.0, iscrowd=True, user_attrs={"occluded": False},
    )  # fmt: skip
    f.add_label_2d_polygon_list(
        sensor_id="cam",
        label_id=f"{fid}-poly-0",
        classification="lane",
        polygons=[
            {"vertices": [[0, 1000], [100, 900.5], [200, 1000]]},
            {"vertices": [(300.0, 1000.0), (400.0, 900.0), (500.0, 1000.0), (450.0, 1050.0)]},
        ],
        user_attrs={"annotator": "ann-9"},
    )
    f.add_label_2d_keypoints(
        sensor_id="cam",
        label_id=f"{fid}-kp-0",
        classification="person",
        keypoints=[
            {"x": 500, "y": 300, "name": "nose"},
            {"x": 490.5, "y": 290.5, "name": "left_eye", "visibility": 1},
            {"x": 510.5, "y": 290.5, "name": "right_eye", "visibility": 0},
        ],
        top=280,
        left=480,
        width=60,
        height=160,
        user_attrs={"pose": "standing"},
    )
    f.add_label_2d_keypoints(
        sensor_id="cam",
        label_id=f"{fid}-kp-1",
        classification="person",
        keypoints=[{"x": 5.0, "y": 6.0, "name": "nose", "visibility": 2}],
    )
    f.add_label_2d_line_segment(
        sensor_id="cam", label_id=f"{fid}-line-0", classification="lane", x1=0, y1=1080, x2=960.5, y2=540,
        user_attrs={"dashed": True},
    )  # fmt: skip
    f.add_label_2d_classification(
        sensor_id="cam",
        label_id=f"{fid}-cls-0",
        classification="street",
        secondary_labels={"weather": WEATHER[i % 4], "time_of_day": "day"},
        user_attrs={"certain": True},
    )
    f.add_label_2d_semseg(sensor_id="cam", label_id=f"{fid}-semseg", mask_url=f"s3://shoal-ref/{fid}/semseg.png")
    f.add_label_2d_instance_seg(
        sensor_id="cam",
        label_id=f"{fid}-inst",
        mask_url=f"s3://shoal-ref/{fid}/instances.png",
        instance_mapping=[{"id": 1, "classification": "car"}, {"id": 2, "classification": "person"}],
    )


def _drive_frame(f: Recorded, i: int, fid: str) -> None:
    """Cameras and lidar in declared coordinate frames (3-D, pinhole, fisheye with a camera matrix), 3-D labels."""
    f.add_coordinate_frame_3d(
        coord_frame_id="ego", position={"x": 1.5 + i, "y": 2.0, "z": 0.5}, orientation={"w": 1, "x": 0, "y": 0, "z": 0}
    )
    f.add_coordinate_frame_3d(coord_frame_id="lidar-mount", parent_frame_id="ego")
    f.add_coordinate_frame_2d(
        coord_frame_id="front-cam", fx=1000.0, fy=1001.5, camera_model="brown_conrady",
        position={"x": 0.5, "y": 0.0, "z": 1.5}, orientation={"w": 0.5, "x": -0.5, "y": 0.5, "z": -0.5},
        k1=0.1, k2=0.01, k3=0.001, p1=0.002, p2=0.003, cx=960.0, cy=540.0, parent_frame_id="ego",
    )  # fmt: skip
    f.add_coordinate_frame_2d(
        coord_frame_id="side-cam", fx=400, fy=400, camera_model="fisheye", k1=0.5, k2=0.25, k3=0.125, k4=0.0625,
        skew=0.01, camera_matrix=[[1, 0, 0, 0.5], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], parent_frame_id="ego",
    )  # fmt: skip
    f.add_coordinate_frame_2d(coord_frame_id="rear-cam", fx=800, fy=800, k4=0.5, k5=0.25, k6=0.125, s1=0.1, s2=0.2,
                              s3=0.3, s4=0.4)  # fmt: skip
    f.add_image(sensor_id="front", image_url=f"s3://shoal-ref/{fid}/front.jpg", width=1920, height=1080,
                coord_frame_id="front-cam", date_captured="2026-03-02T08:00:00.100000+00:00")  # fmt: skip
    f.add_image(sensor_id="side", image_url=f"s3://shoal-ref/{fid}/side.jpg", coord_frame_id="side-cam")
    f.add_image(sensor_id="rear", image_url=f"s3://shoal-ref/{fid}/rear.jpg", coord_frame_id="rear-cam")
    f.add_point_cloud_pcd(sensor_id="lidar", pcd_url=f"s3://shoal-ref/{fid}/lidar.pcd", coord_frame_id="lidar-mount",
                          date_captured="2026-03-02T08:00:00.050000-07:00")  # fmt: skip
    f.add_point_cloud_bins(
        sensor_id="radar",
        pointcloud_url=f"s3://shoal-ref/{fid}/radar.bin",
        intensity_url=f"s3://shoal-ref/{fid}/radar_i.bin",
        range_url=f"s3://shoal-ref/{fid}/radar_r.bin",
    )
    f.add_label_3d_cuboid(
        label_id=f"{fid}-cub-0", classification="car", position=[10.0 + i, 2.0, 0.8], dimensions=[4.5, 1.9, 1.6],
        rotation=[0.0, 0.0, 0.38268343236, 0.92387953251], coord_frame_id="ego", user_attrs=_attrs(i, 1),
    )  # fmt: skip
    f.add_label_3d_cuboid(
        label_id=f"{fid}-cub-1", classification="person", position=[-3.0, 1.0, 0.9], dimensions=[0.6, 0.6, 1.8],
        rotation=[0.0, 0.0, 0.0, 1.0],
    )  # fmt: skip
    f.add_label_3d_classification(label_id=f"{fid}-scene", classification="highway", user_attrs={"lanes": 3})
    f.add_label_3d_classification(label_id=f"{fid}-scene-ego", classification="street", coord_frame_id="ego")
    f.add_label_2d_bbox(sensor_id="front", label_id=f"{fid}-box-0", classification="car", top=400, left=800,
                        width=200, height=120)  # fmt: skip


def _document_frame(f: Recorded, i: int, fid: str) -> None:
    f.add_text(sensor_id="doc", text=f"Turn left at the {i}th sign", date_captured="2026-03-03T12:00:00")
    for n, (token, cls) in enumerate([("Turn", "verb"), ("left", "direction"), ("sign", "sign")]):
        f.add_label_text_token(
            sensor_id="doc", label_id=f"{fid}-tok-{n}", index=n, token=token, classification=cls, visible=n != 1,
            user_attrs={"lemma": token.lower()},
        )  # fmt: skip
    f.add_label_2d_classification(sensor_id="doc", label_id=f"{fid}-cls-0", classification="instruction")


def _media_frame(f: Recorded, i: int, fid: str) -> None:
    """Audio, video, a mesh, and an image under the client's default sensor id."""
    f.add_audio(sensor_id="mic", audio_url=f"s3://shoal-ref/{fid}/mic.mp3")
    f.add_video(sensor_id="dashcam", video_url=f"s3://shoal-ref/{fid}/dash.mp4", date_captured="2026-03-04T00:00:00Z")
    f.add_obj(sensor_id="mesh", obj_url=f"s3://shoal-ref/{fid}/scene.obj")
    f.add_image(image_url=f"s3://shoal-ref/{fid}/default.jpg", width=640, height=480)
    f.add_point_cloud_bins(sensor_id="velodyne", kitti_format_url=f"s3://shoal-ref/{fid}/velodyne.bin")
    f.add_label_2d_classification(sensor_id="mic", label_id=f"{fid}-cls-0", classification="siren")
    f.add_label_2d_bbox(label_id=f"{fid}-box-0", classification="sign", top=1, left=2, width=3, height=4)
    f.add_label_3d_classification(label_id=f"{fid}-scene", classification="highway")


SCENES = [_camera_frame, _drive_frame, _document_frame, _media_frame]


def labeled_frames(al: Any, count: int) -> tuple[list[Any], list[dict[str, Any]]]:
    frames, expected = [], []
    for i in range(count):
        fid = f"ref-{i:04d}"
        init: dict[str, Any] = {"frame_id": fid}
        if i % 7 != 6:  # the rest leave the capture time to the client ("now")
            init["date_captured"] = (
                f"2026-03-01T{i % 24:02d}:00:00Z" if i % 2 else f"2026-03-01T{i % 24:02d}:30:00+02:00"
            )
        if i % 5 != 4:  # the rest leave the device id to the client
            init["device_id"] = f"truck-{i % 3}"
        log: list[dict[str, Any]] = []
        frame = al.LabeledFrame(**init)
        f = Recorded(frame, log)
        SCENES[i % len(SCENES)](f, i, fid)
        _metadata(f, i)
        frames.append(frame)
        expected.append({"frame_id": fid, "init": init, "scene": SCENES[i % len(SCENES)].__name__, "calls": log})
    return frames, expected


# ---- inferences --------------------------------------------------------------------------------------------------


def _predictions(f: Recorded, i: int, fid: str) -> None:
    scene = i % len(SCENES)
    c = 0.5 + (i % 40) / 100  # confidences in [0.5, 0.9)
    if scene == 0:
        f.add_inference_2d_bbox(sensor_id="cam", label_id=f"{fid}-p-box-0", classification="car", top=101 + i,
                                left=199.5, width=305, height=149, confidence=c, user_attrs=_attrs(i, 2))  # fmt: skip
        f.add_inference_2d_bbox(sensor_id="cam", label_id=f"{fid}-p-box-1", classification="person", top=11.0,
                                left=21.0, width=29.0, height=58.0, confidence=0.125, iscrowd=False)  # fmt: skip
        f.add_inference_2d_polygon_list(
            sensor_id="cam",
            label_id=f"{fid}-p-poly-0",
            classification="lane",
            polygons=[{"vertices": [[0, 1000], [100, 905], [200, 1000]]}],
            confidence=0.875,
        )
        f.add_inference_2d_keypoints(
            sensor_id="cam",
            label_id=f"{fid}-p-kp-0",
            classification="person",
            keypoints=[{"x": 501, "y": 301, "name": "nose"}, {"x": 491.0, "y": 291.0, "name": "left_eye"}],
            confidence=c - 0.25,
            top=281,
            left=481,
            width=59,
            height=158,
        )
        f.add_inference_2d_line_segment(sensor_id="cam", label_id=f"{fid}-p-line-0", classification="lane", x1=1,
                                        y1=1079, x2=961, y2=541, confidence=0.6)  # fmt: skip
        f.add_inference_2d_classification(sensor_id="cam", label_id=f"{fid}-p-cls-0", classification="street",
                                          confidence=0.99, user_attrs={"topk": ["street", "highway"]})  # fmt: skip
    elif scene == 1:
        f.add_inference_3d_cuboid(
            label_id=f"{fid}-p-cub-0", classification="car", position=[10.25 + i, 2.0, 0.8], dimensions=[4.4, 1.9, 1.5],
            rotation=[0.0, 0.0, 0.0, 1.0], confidence=c, coord_frame_id="ego", user_attrs={"tracker": "kf"},
        )  # fmt: skip
        f.add_inference_3d_cuboid(
            label_id=f"{fid}-p-cub-1", classification="person", position=[-3.0, 1.0, 0.9], dimensions=[0.5, 0.5, 1.7],
            rotation=[0.0, 0.0, 0.0, 1.0], confidence=0.3,
        )  # fmt: skip
        f.add_inference_3d_classification(label_id=f"{fid}-p-scene", classification="highway", confidence=0.7)
        f.add_inference_3d_classification(label_id=f"{fid}-p-scene-ego", classification="street", confidence=0.2,
                                          coord_frame_id="ego", user_attrs={"source": "ego"})  # fmt: skip
        f.add_inference_2d_bbox(sensor_id="front", label_id=f"{fid}-p-box-0", classification="car", top=401,
                                left=801, width=199, height=119, confidence=c)  # fmt: skip
    elif scene == 2:
        for n, (token, cls) in enumerate([("Turn", "verb"), ("left", "direction"), ("sign", "sign")]):
            f.add_inference_text_token(
                sensor_id="doc", label_id=f"{fid}-p-tok-{n}", index=n, token=token, classification=cls,
                visible=True, confidence=0.9 - n / 10,
            )  # fmt: skip
        f.add_inference_2d_classification(sensor_id="doc", label_id=f"{fid}-p-cls-0", classification="instruction",
                                          confidence=0.55)  # fmt: skip
    else:
        f.add_inference_2d_classification(sensor_id="mic", label_id=f"{fid}-p-cls-0", classification="siren",
                                          confidence=1.0)  # fmt: skip
        f.add_inference_2d_bbox(label_id=f"{fid}-p-box-0", classification="sign", top=1, left=2, width=3, height=4,
                                confidence=0.0)  # fmt: skip
        f.add_inference_3d_classification(label_id=f"{fid}-p-scene", classification="highway", confidence=0.45)
    f.add_custom_metric(name="loss", value=0.5 + i / 64)
    f.add_custom_metric(name="confusion", value=[[i % 3, 1], [0, 2.5]])
    f.add_user_metadata(key="model_run", val=f"run-{i % 2}")
    f.add_user_metadata(key="latency_ms", val=12.5 + i)
    f.add_user_metadata(key="epoch", val=7)
    f.add_user_metadata(key="ensembled", val=i % 2 == 0)


def inference_frames(al: Any, count: int) -> tuple[list[Any], list[dict[str, Any]]]:
    frames, expected = [], []
    for i in range(count):
        fid = f"ref-{i:04d}"
        log: list[dict[str, Any]] = []
        frame = al.InferencesFrame(frame_id=fid)
        _predictions(Recorded(frame, log), i, fid)
        frames.append(frame)
        expected.append({"frame_id": fid, "init": {"frame_id": fid}, "calls": log})
    return frames, expected


# ---- parts Shoal cannot take, or has no place for ----------------------------------------------------------------


def edge_labeled_frames(al: Any) -> tuple[list[Any], list[dict[str, Any]]]:
    import numpy as np

    built: list[tuple[str, str, Any]] = []

    def frame(fid: str, why: str) -> Recorded:
        f = al.LabeledFrame(frame_id=fid, date_captured="2026-03-05T00:00:00Z", device_id="edge")
        log: list[dict[str, Any]] = []
        built.append((fid, why, (f, log)))
        r = Recorded(f, log)
        r.add_image(sensor_id="cam", image_url=f"s3://shoal-ref/{fid}.jpg", width=4, height=2)
        return r

    f = frame("edge-mask-data", "a mask given as data: its pixels go to a separate file, not to the rows")
    f.add_label_2d_semseg(sensor_id="cam", label_id="edge-mask-data-semseg", mask_data=np.zeros((2, 4), np.uint8))
    f = frame("edge-instance-data", "an instance mask given as data")
    f.add_label_2d_instance_seg(
        sensor_id="cam",
        label_id="edge-instance-data-inst",
        mask_data=np.ones((2, 4), np.uint8),
        instance_mapping=[{"id": 1, "classification": "car"}],
    )
    f = frame("edge-null-attr", "a label attribute that is null: its type is unknown")
    f.add_label_2d_bbox(sensor_id="cam", label_id="edge-null-attr-box", classification="car", top=0, left=0,
                        width=1, height=1, user_attrs={"occluded": None})  # fmt: skip
    f = frame("edge-empty-attr", "a label attribute that is an empty list: its element type is unknown")
    f.add_label_2d_bbox(sensor_id="cam", label_id="edge-empty-attr-box", classification="car", top=0, left=0,
                        width=1, height=1, user_attrs={"colors": []})  # fmt: skip
    f = frame("edge-extras", "parts Shoal's contract has no place for: imported without them, each reported")
    f.add_image_overlay(sensor_id="cam", overlay_id="heat", image_url="s3://shoal-ref/edge-extras-heat.png",
                        resize_mode="fill")  # fmt: skip
    f.add_label_2d_keypoints(
        sensor_id="cam", label_id="edge-extras-kp", classification="person", keypoints=[{"x": 1, "y": 1, "name": "nose"}],
        polygons=[{"vertices": [[0, 0], [1, 0], [1, 1]]}], center=[0.5, 0.5],
    )  # fmt: skip
    f.add_label_2d_polygon_list(sensor_id="cam", label_id="edge-extras-poly", classification="lane",
                                polygons=[{"vertices": [[0, 0], [2, 0], [2, 2]]}], center=[1, 1])  # fmt: skip
    f.add_label_2d_bbox(sensor_id="cam", label_id="edge-extras-box", classification="car", top=0, left=0, width=1,
                        height=1, links={"parent": "edge-extras-kp"})  # fmt: skip
    f.add_label_2d_line_segment(sensor_id="cam", label_id="edge-extras-line", classification="lane", x1=0, y1=0,
                                x2=1, y2=1, iscrowd=True)  # fmt: skip
    f.add_label_2d_semseg(sensor_id="cam", label_id="edge-extras-semseg", mask_url="s3://shoal-ref/m.png",
                          resize_mode="fill")  # fmt: skip
    f.add_label_2d_instance_seg(
        sensor_id="cam",
        label_id="edge-extras-inst",
        mask_url="s3://shoal-ref/i.png",
        instance_mapping=[{"id": 3, "classification": "car", "attributes": {"parked": True}}],
    )
    f = frame("edge-fine", "nothing unusual: imported whole beside the others")
    f.add_label_2d_bbox(sensor_id="cam", label_id="edge-fine-box", classification="car", top=0, left=0, width=1,
                        height=1)  # fmt: skip

    frames = [f for _, _, (f, _) in built]
    expected = [{"frame_id": fid, "why": why, "calls": log} for fid, why, (_, log) in built]
    return frames, expected


def edge_inference_frames(al: Any) -> tuple[list[Any], list[dict[str, Any]]]:
    built: list[tuple[str, str, Any, list[dict[str, Any]]]] = []

    def frame(fid: str, why: str) -> Recorded:
        f = al.InferencesFrame(frame_id=fid)
        log: list[dict[str, Any]] = []
        built.append((fid, why, f, log))
        return Recorded(f, log)

    f = frame("edge-extras", "predicted masks carry no confidence in the client; Shoal needs one on every prediction")
    f.add_inference_2d_semseg(sensor_id="cam", label_id="edge-extras-p-semseg", mask_url="s3://shoal-ref/pm.png")
    f = frame("edge-fine", "a box area and a visualization asset: no place for them in Shoal, reported")
    f.add_inference_2d_bbox(sensor_id="cam", label_id="edge-fine-p-box", classification="car", top=0, left=0,
                            width=1, height=1, confidence=0.5, area=1.0)  # fmt: skip
    f.add_visualization_asset(image_id="heat", image_url="s3://shoal-ref/edge-fine-heat.png")
    return [b[2] for b in built], [{"frame_id": fid, "why": why, "calls": log} for fid, why, _, log in built]


def _one_frame_a_line(expected: dict[str, Any]) -> str:
    """JSON with one frame a line: small enough to commit, readable in a diff."""
    parts = []
    for key, value in expected.items():
        if isinstance(value, list):
            inner = ",\n".join("  " + json.dumps(item, separators=(",", ":")) for item in value)
            parts.append(f" {json.dumps(key)}: [\n{inner}\n ]")
        else:
            parts.append(f" {json.dumps(key)}: {json.dumps(value)}")
    return "{\n" + ",\n".join(parts) + "\n}\n"


def updates(al: Any) -> tuple[Any, list[dict[str, Any]]]:
    """A MODIFY of one frame (new metadata value, one more label) and a DELETE of another, in the streaming shape.

    The client sends a MODIFY through `Client.update_dataset_frames`, which first asks the service for the window
    the frame was last written in; offline, that answer is given here and the client's own `_update_frame` queues
    the frame, as `update_dataset_frames` does."""
    dataset = al.LabeledDataset()
    log: list[dict[str, Any]] = []
    init = {"frame_id": "ref-0000", "update_type": "MODIFY"}
    frame = al.LabeledFrame(**init)
    f = Recorded(frame, log)
    f.add_user_metadata(key="weather", val="clear")
    f.add_user_metadata_list(key="tags", val=["reviewed"])
    f.add_label_2d_bbox(sensor_id="cam", label_id="ref-0000-box-9", classification="sign", top=5, left=6, width=7,
                        height=8, user_attrs={"occluded": True})  # fmt: skip
    frame._previously_written_window = "2026_03"
    dataset._update_frame(frame)
    dataset.delete_frame("ref-0001")
    expected = [
        {"frame_id": "ref-0000", "init": init, "calls": log},
        {"frame_id": "ref-0001", "init": {"frame_id": "ref-0001", "update_type": "DELETE"}, "calls": []},
    ]
    return dataset, expected


# ---- files -------------------------------------------------------------------------------------------------------


def _write(path: Path, write: Any) -> None:
    with path.open("w") as fh:
        write(fh)
    print(f"{path.name}: {sum(1 for _ in path.open())} rows")


def main(count: int = 40) -> None:
    al = _import_client()
    frames, expected_frames = labeled_frames(al, count)
    inferences, expected_inferences = inference_frames(al, count)
    edge_frames, expected_edge_frames = edge_labeled_frames(al)
    edge_inferences, expected_edge_inferences = edge_inference_frames(al)

    batch = al.LabeledDataset(pipeline_mode="BATCH")
    streaming = al.LabeledDataset()
    edge = al.LabeledDataset(pipeline_mode="BATCH")
    for frame in frames:
        batch.add_frame(frame)
        streaming.add_frame(frame)
    for frame in edge_frames:
        edge.add_frame(frame)
    predicted = al.Inferences()
    for frame in inferences:
        predicted.add_frame(frame)
    edge_predicted = al.Inferences()
    for frame in edge_inferences:
        edge_predicted.add_frame(frame)

    _write(HERE / "labeled_inline.jsonl", batch.write_to_file)

    def split(fh: Any) -> None:
        streaming.write_frames_to_file_streaming(fh)
        streaming.write_labels_to_file_streaming(fh)

    _write(HERE / "labeled_split.jsonl", split)
    _write(HERE / "inferences.jsonl", predicted.write_to_file)
    changes, expected_updates = updates(al)

    def split_updates(fh: Any) -> None:
        changes.write_frames_to_file_streaming(fh)
        changes.write_labels_to_file_streaming(fh)

    _write(HERE / "updates_split.jsonl", split_updates)
    _write(HERE / "edge_labeled.jsonl", edge.write_to_file)
    _write(HERE / "edge_inferences.jsonl", edge_predicted.write_to_file)
    expected = {
        "client": CLIENT,
        "python": sys.version.split()[0],
        "frames": expected_frames,
        "inferences": expected_inferences,
        "updates": expected_updates,
        "edge_frames": expected_edge_frames,
        "edge_inferences": expected_edge_inferences,
    }
    (HERE / "expected.json").write_text(_one_frame_a_line(expected))
    labels = sum(len(f._labels.label_data) for f in frames)
    predictions = sum(len(f.label_data) for f in inferences)
    print(f"{len(frames)} frames, {labels} label rows, {len(inferences)} inference frames, {predictions} predictions")


if __name__ == "__main__":
    main()
