"""Selection inputs read from an inference set's columns."""

from __future__ import annotations

from shoal.embedding.samples import _most_common_class
from shoal.storage import columnar
from shoal.v1 import frame_pb2


def test_the_most_common_predicted_class_breaks_ties_by_first_prediction() -> None:
    frames = []
    for frame_id, classes in (("a", ["person", "car", "car"]), ("b", ["person", "car"]), ("c", []), ("d", ["x"])):
        frame = frame_pb2.InferenceFrame(frame_id=frame_id)
        for i, name in enumerate(classes):
            frame.labels.add(label_id=f"{frame_id}{i}", classification=name)
        frames.append(frame)
    labels = columnar.INFERENCES.encode(frames).column("labels").combine_chunks()
    assert _most_common_class(labels, 4) == ["car", "person", None, "x"]
