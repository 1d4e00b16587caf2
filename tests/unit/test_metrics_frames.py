"""The metrics service's bulk readers on Arrow columns: frames joined by id, and the image order computed on the id
column."""

from __future__ import annotations

import pyarrow as pa
from shoal import rigs
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
