"""The metrics service's bulk readers on Arrow columns: frames joined by id, the image order computed on the id
column, and keypoints gathered from the labels column a batch at a time, against the same frames taken one message
at a time."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from shoal import rigs
from shoal.demo_pose import pose_set
from shoal.metrics import keypoints, tasks
from shoal.metrics.frames import Frames
from shoal.storage import columnar
from shoal.v1 import frame_pb2, label_pb2

RIG = keypoints.Rig("person", list(rigs.COCO_PERSON_KEYPOINTS), list(rigs.COCO_PERSON_SKELETON))
NOT_LABELED = label_pb2.KEYPOINT_VISIBILITY_NOT_LABELED
VISIBLE = label_pb2.KEYPOINT_VISIBILITY_VISIBLE


def test_join_pairs_rows_by_frame_id_and_counts_the_missing() -> None:
    truth = columnar.FRAMES.encode([frame_pb2.Frame(frame_id=i, device_id=f"dev-{i}") for i in ("c", "a", "b")])
    predictions = columnar.INFERENCES.encode([frame_pb2.InferenceFrame(frame_id=i) for i in ("b", "x", "c", "y")])
    frames, missing = Frames.join(predictions, truth)
    assert missing == 2
    assert frames.frame_ids() == ["b", "c"]
    assert frames.truth.column("device_id").to_pylist() == ["dev-b", "dev-c"]


def test_the_image_order_is_computed_on_the_column_as_image_key_orders_ids() -> None:
    ids = ["10", "b", "2", "-3", "007", "7", "a10", "", "+1", "1e3", "99999999999999999999", "0"]
    frames = Frames.of([tasks.Pair(i, frame_pb2.Frame(frame_id=i), frame_pb2.InferenceFrame(frame_id=i)) for i in ids])
    assert tasks.in_image_order(frames).frame_ids() == sorted(ids, key=tasks.image_key)
    small = pa.array([i for i in ids if i != "99999999999999999999"])  # within int64: no fallback
    assert [small[i].as_py() for i in tasks.image_order(small)] == sorted(small.to_pylist(), key=tasks.image_key)


def people_frames(seed: int = 4) -> tuple[list[frame_pb2.Frame], list[keypoints.Instance]]:
    """People three to a frame with some points not labeled, an image sensor on most frames, a box on most people;
    and the same people as the instances the rules take."""
    rng = np.random.default_rng(seed)
    frames: list[frame_pb2.Frame] = []
    instances = []
    for n, person in enumerate(pose_set(90, swaps=3, seed=seed).people):
        if n % 3 == 0:
            frames.append(frame_pb2.Frame(frame_id=f"f{n // 3:03d}"))
            if n % 4:
                frames[-1].sensors.add(sensor_id="cam", image=frame_pb2.Image(url="s3://x", width=640, height=480))
        label = frames[-1].labels.add(label_id=person.label_id, classification="person", sensor_id="cam")
        points = {}
        shift = 500.0 if n % 11 == 0 else 0.0  # off the right edge of the image, where the frame gives its size
        for name, (x0, y) in person.points.items():
            x = x0 + shift
            labeled = rng.random() > 0.1
            label.keypoints_2d.keypoints.add(name=name, x=x, y=y, visibility=VISIBLE if labeled else NOT_LABELED)
            if labeled:
                points[name] = (x, y)
        box = (person.box[0] + shift, *person.box[1:]) if n % 5 else None
        if box is not None:
            label.keypoints_2d.box.CopyFrom(label_pb2.Box2D(left=box[0], top=box[1], width=box[2], height=box[3]))
        image = (640.0, 480.0) if (n - n % 3) % 4 else None
        instances.append(keypoints.Instance(frames[-1].frame_id, person.label_id, points, box, image))
        if n % 7 == 0:  # a label of another class, and one of another geometry, gathered by nobody
            frames[-1].labels.add(label_id=f"x{n}", classification="dog").keypoints_2d.SetInParent()
            frames[-1].labels.add(label_id=f"y{n}", classification="person").box_2d.width = 3
    return frames, instances


def test_keypoints_gathered_from_columns_in_batches_are_the_instances_themselves() -> None:
    frames, instances = people_frames()
    table = columnar.FRAMES.encode(frames).select(list(keypoints.GATHER_COLUMNS))
    columns = {"person": keypoints.Columns(RIG)}
    for batch in table.to_batches(max_chunksize=7):
        keypoints.gather(batch, columns)
    assert len(columns["person"]) == len(instances)
    expected = keypoints.check(RIG, instances)
    # Candidates to compare: the planted swaps, the points left out, the people off the image.
    assert {keypoints.SWAPPED, keypoints.MISSING, keypoints.OUTSIDE_IMAGE} <= {c.rule for c in expected}
    assert keypoints.check_columns(columns["person"]) == expected
