"""The SDK's builders: what they build, and every add-time check naming frame, label and field."""

from __future__ import annotations

import math
from typing import Any

import pytest
import shoal
from hypothesis import given
from hypothesis import strategies as st
from shoal.sdk.client import parse_field_type
from shoal.v1 import common_pb2, dataset_pb2, frame_pb2


def frame_with_image(frame_id: str = "f1", **kw: Any) -> shoal.LabeledFrame:
    frame = shoal.LabeledFrame(frame_id=frame_id, **kw)
    frame.add_image(sensor_id="cam", image_url="https://x/1.jpg", width=100, height=80)
    return frame


def error(call: Any) -> shoal.ValidationError:
    with pytest.raises(shoal.ValidationError) as info:
        call()
    return info.value


@pytest.mark.parametrize("bad", ["", "a#b", "a/b", "a[0]", "a?", "a*", "a,b", "tab\there", "nl\n", "bell\x07"])
def test_bad_frame_ids(bad: str) -> None:
    err = error(lambda: shoal.LabeledFrame(frame_id=bad))
    assert err.field == "frame_id"


@given(st.text(min_size=1, max_size=40).filter(lambda s: s.isprintable() and not set(s) & set("#[]?*,/")))
def test_printable_ids_without_forbidden_characters_pass(frame_id: str) -> None:
    assert shoal.LabeledFrame(frame_id=frame_id).frame.frame_id == frame_id


def test_box_checks_name_frame_label_and_field() -> None:
    frame = frame_with_image()
    err = error(
        lambda: frame.add_label_2d_bbox(
            sensor_id="cam", label_id="b1", classification="car", top=0, left=0, width=0, height=5
        )
    )
    assert (err.frame_id, err.label_id, err.field) == ("f1", "b1", "box_2d")
    assert "width must be positive" in str(err)
    assert str(err).startswith("frame 'f1', label 'b1', field box_2d:")
    err = error(
        lambda: frame.add_label_2d_bbox(
            sensor_id="cam", label_id="b1", classification="car", top=math.nan, left=0, width=1, height=1
        )
    )
    assert "finite" in err.problem
    err = error(
        lambda: frame.add_label_2d_bbox(
            sensor_id="nope", label_id="b1", classification="car", top=0, left=0, width=1, height=1
        )
    )
    assert err.field == "sensor_id"
    frame.add_label_2d_bbox(sensor_id="cam", label_id="b1", classification="car", top=0, left=0, width=1, height=1)
    err = error(
        lambda: frame.add_label_2d_bbox(
            sensor_id="cam", label_id="b1", classification="car", top=0, left=0, width=1, height=1
        )
    )
    assert "used twice" in err.problem


def test_ground_truth_has_no_confidence_and_inferences_need_one() -> None:
    frame = frame_with_image()
    err = error(
        lambda: frame.add_label_2d_bbox(
            sensor_id="cam", label_id="b", classification="c", top=0, left=0, width=1, height=1, confidence=0.5
        )
    )
    assert err.field == "confidence"
    inf = shoal.InferencesFrame(frame_id="f1")
    assert (
        error(
            lambda: inf.add_inference_2d_bbox(
                sensor_id="cam", label_id="p", classification="c", top=0, left=0, width=1, height=1
            )
        ).field
        == "confidence"
    )
    assert (
        "[0, 1]"
        in error(
            lambda: inf.add_inference_2d_bbox(
                sensor_id="cam", label_id="p", classification="c", top=0, left=0, width=1, height=1, confidence=1.5
            )
        ).problem
    )
    inf.add_inference_2d_bbox(
        sensor_id="cam", label_id="p", classification="c", top=0, left=0, width=1, height=1, confidence=1.0
    )
    assert inf.frame.labels[0].confidence == 1.0


def test_coordinate_frames_must_exist_before_reference() -> None:
    frame = shoal.LabeledFrame(frame_id="f")
    assert (
        error(lambda: frame.add_image(sensor_id="cam", image_url="u", coord_frame_id="cam-frame")).field
        == "coord_frame_id"
    )
    assert (
        error(lambda: frame.add_coordinate_frame_3d(coord_frame_id="lidar", parent_frame_id="ego")).field
        == "parent_frame_id"
    )
    frame.add_coordinate_frame_3d(coord_frame_id="ego")
    frame.add_coordinate_frame_3d(coord_frame_id="lidar", parent_frame_id="ego")
    assert error(lambda: frame.add_coordinate_frame_3d(coord_frame_id="ego")).problem.endswith("is added twice")
    err = error(
        lambda: frame.add_label_3d_cuboid(
            label_id="c",
            classification="car",
            position=(0, 0, 0),
            dimensions=(1, 1, 1),
            rotation=(0, 0, 0, 1),
            coord_frame_id="radar",
        )
    )
    assert (err.label_id, err.field) == ("c", "coord_frame_id")
    assert (
        error(lambda: frame.add_coordinate_frame_2d(coord_frame_id="cam", fx=0, fy=1)).problem
        == "fx must be positive, got 0"
    )
    assert (
        "camera_model"
        in error(
            lambda: frame.add_coordinate_frame_2d(coord_frame_id="cam2", fx=1, fy=1, camera_model="pinhole")
        ).problem
    )
    assert (
        error(lambda: frame.add_coordinate_frame_2d(coord_frame_id="cam3", fx=1, fy=1, camera_matrix=[1, 2, 3])).field
        == "camera_matrix"
    )


def test_polygons_keypoints_cuboids_and_text() -> None:
    frame = frame_with_image()
    frame.add_text(sensor_id="txt", text="hello")
    assert (
        "at least 3"
        in error(
            lambda: frame.add_label_2d_polygon_list(
                sensor_id="cam", label_id="p", classification="c", polygons=[{"vertices": [(0, 0), (1, 1)]}]
            )
        ).problem
    )
    err = error(
        lambda: frame.add_label_2d_polygon_list(
            sensor_id="cam", label_id="p", classification="c", polygons=[{"vertices": [(0, 0), (1, 1), (0, 0)]}]
        )
    )
    assert "repeated" in err.problem
    assert err.field == "polygons[0].vertices"
    assert (
        "named twice"
        in error(
            lambda: frame.add_label_2d_keypoints(
                sensor_id="cam",
                label_id="k",
                classification="c",
                keypoints=[{"x": 0, "y": 0, "name": "a"}, {"x": 1, "y": 1, "name": "a"}],
            )
        ).problem
    )
    assert (
        "must not be empty"
        in error(
            lambda: frame.add_label_2d_keypoints(
                sensor_id="cam", label_id="k", classification="c", keypoints=[{"x": 0, "y": 0, "name": ""}]
            )
        ).problem
    )
    assert (
        error(
            lambda: frame.add_label_2d_keypoints(
                sensor_id="cam", label_id="k", classification="c", keypoints=[{"x": 0, "y": 0, "name": "a"}], top=1
            )
        ).field
        == "box"
    )
    assert (
        error(
            lambda: frame.add_label_3d_cuboid(
                label_id="c", classification="car", position=(0, 0, 0), dimensions=(1, 0, 1), rotation=(0, 0, 0, 1)
            )
        ).field
        == "dimensions"
    )
    assert (
        error(
            lambda: frame.add_label_3d_cuboid(
                label_id="c", classification="car", position=(0, 0, 0), dimensions=(1, 1, 1), rotation=(0, 0, 0, 0)
            )
        ).field
        == "rotation"
    )
    assert (
        error(
            lambda: frame.add_label_text_token(sensor_id="txt", label_id="t", index=0, token="", classification="c")
        ).field
        == "token"
    )
    assert error(lambda: frame.add_label_2d_semseg(sensor_id="cam", label_id="s", mask_url="")).field == "mask_url"
    assert (
        "unique"
        in error(
            lambda: frame.add_label_2d_instance_seg(
                sensor_id="cam",
                label_id="i",
                mask_url="m",
                instance_mapping=[{"id": 1, "classification": "a"}, {"id": 1, "classification": "b"}],
            )
        ).problem
    )


def test_metadata_types_keys_and_nulls() -> None:
    frame = frame_with_image()
    frame.add_user_metadata("s", "x")
    frame.add_user_metadata("i", 1)
    frame.add_user_metadata("f", 1, val_type="float")
    frame.add_user_metadata("b", False)
    frame.add_user_metadata("n", None, val_type="str")
    frame.add_user_metadata_list("l", [1, 2.5])
    frame.add_user_metadata_list("e", [], list_elt_type="int")
    md = frame.frame.user_metadata
    assert md["s"].string_value == "x"
    assert md["i"].int_value == 1
    assert md["f"].float_value == 1.0
    assert md["b"].WhichOneof("kind") == "bool_value"
    assert md["n"].null_value == common_pb2.METADATA_TYPE_STRING
    assert list(md["l"].float_list_value.values) == [1.0, 2.5]
    assert md["e"].null_value == common_pb2.METADATA_TYPE_INT_LIST
    assert error(lambda: frame.add_user_metadata("bad key", 1)).field == "user_metadata['bad key']"
    assert "val_type" in error(lambda: frame.add_user_metadata("z", None)).problem
    assert "finite" in error(lambda: frame.add_user_metadata("z", math.inf)).problem
    assert "one type" in error(lambda: frame.add_user_metadata_list("z", ["a", 1])).problem
    assert "unsupported" in error(lambda: frame.add_user_metadata("z", {"a": 1})).problem  # type: ignore[arg-type]


def test_dataset_keeps_ids_unique_metadata_typed_and_embeddings_one_size() -> None:
    dataset = shoal.LabeledDataset()
    first = frame_with_image("a")
    first.add_label_2d_bbox(sensor_id="cam", label_id="shared", classification="car", top=0, left=0, width=1, height=1)
    first.add_user_metadata("weather", "rain")
    first.add_frame_embedding(embedding=[0.0] * 4)
    dataset.add_frame(first)
    assert error(lambda: dataset.add_frame(frame_with_image("a"))).field == "frame_id"
    clash = frame_with_image("b")
    clash.add_label_2d_bbox(sensor_id="cam", label_id="shared", classification="car", top=0, left=0, width=1, height=1)
    err = error(lambda: dataset.add_frame(clash))
    assert (err.frame_id, err.label_id) == ("b", "shared")
    retyped = frame_with_image("c")
    retyped.add_user_metadata("weather", 3)
    assert error(lambda: dataset.add_frame(retyped)).field == "user_metadata['weather']"
    wider = frame_with_image("d")
    wider.add_frame_embedding(embedding=[0.0] * 5)
    assert "4 dimensions, got 5" in error(lambda: dataset.add_frame(wider)).problem
    crop_first = frame_with_image("e")
    assert error(lambda: crop_first.add_crop_embedding(label_id="missing", embedding=[1.0])).label_id == "missing"
    dataset.delete_frame("gone")
    assert dataset.items[-1].change_type == frame_pb2.CHANGE_TYPE_DELETE
    assert len(dataset) == 2


def test_modify_frames_carry_no_labels_and_updates_do() -> None:
    modify = shoal.LabeledFrame(frame_id="f", update_type="MODIFY")
    modify.add_user_metadata("reviewed", True)
    assert modify.frame.change_type == frame_pb2.CHANGE_TYPE_MODIFY
    assert (
        "UpdateGTLabelSet"
        in error(
            lambda: modify.add_label_2d_bbox(
                sensor_id="cam", label_id="b", classification="c", top=0, left=0, width=1, height=1
            )
        ).problem
    )
    update = shoal.UpdateGTLabelSet(frame_id="f")
    update.update_label_2d_bbox(sensor_id="cam", label_id="b", classification="c", top=0, left=0, width=1, height=1)
    assert update.to_proto().labels[0].box_2d.width == 1
    assert error(lambda: shoal.LabeledFrame(frame_id="f", update_type="UPSERT")).field == "update_type"  # type: ignore[arg-type]


def test_class_map() -> None:
    classes = shoal.LabelClassMap.from_classnames(["car", "person"])
    assert [(e.class_id, e.name) for e in classes.to_proto().entries] == [(0, "car"), (1, "person")]
    assert error(lambda: classes.add_entry(shoal.ClassMapEntry(name="truck", class_id=1))).field == "class_id"
    assert error(lambda: classes.add_entry(shoal.ClassMapEntry(name="car", class_id=7))).field == "name"
    assert (
        error(lambda: shoal.ClassMapEntry(name="p", class_id=2, keypoint_names=["a"], skeleton=[("a", "b")])).field
        == "skeleton"
    )
    assert error(lambda: shoal.ClassMapEntry(name="p", class_id=2, color=(300, 0, 0))).field == "color"
    rig = shoal.ClassMapEntry(
        name="p", class_id=2, keypoint_names=["a", "b"], skeleton=[("a", "b")], keypoint_sigmas=[0.1, 0.2]
    )
    entry = rig.to_proto()
    assert [(k.name, k.sigma) for k in entry.keypoints] == [("a", 0.1), ("b", 0.2)]
    assert (entry.skeleton[0].from_keypoint, entry.skeleton[0].to_keypoint) == ("a", "b")


def test_geo_and_custom_metrics() -> None:
    frame = frame_with_image()
    assert "latitude" in error(lambda: frame.add_geo_latlong_data(91, 0)).problem
    frame.add_geo_latlong_data(45.5, -122.6)
    assert frame.frame.geo.latitude == 45.5
    inf = shoal.InferencesFrame(frame_id="f")
    inf.add_custom_metric("loss", 0.3)
    inf.add_custom_metric("cm", [[1, 2], [3, 4]])
    assert inf.frame.custom_metrics["cm"].confusion_matrix.columns == 2
    assert "equal-length" in error(lambda: inf.add_custom_metric("bad", [[1, 2], [3]])).problem


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("STRING", (dataset_pb2.FIELD_TYPE_STRING, 0)),
        ("integer", (dataset_pb2.FIELD_TYPE_INTEGER, 0)),
        ("ARRAY<FLOAT>", (dataset_pb2.FIELD_TYPE_ARRAY, dataset_pb2.FIELD_TYPE_FLOAT)),
        ("array< string >", (dataset_pb2.FIELD_TYPE_ARRAY, dataset_pb2.FIELD_TYPE_STRING)),
    ],
)
def test_field_types(text: str, expected: tuple[int, int]) -> None:
    assert parse_field_type(text) == expected


def test_unknown_field_type() -> None:
    with pytest.raises(ValueError, match="unknown field type"):
        parse_field_type("DATE")
