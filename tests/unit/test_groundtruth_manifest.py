"""Ground Truth output manifests parsed line by line: what is read from each format, and every malformed line
reported with its number while the others parse."""

from __future__ import annotations

import json

from shoal.sdk import groundtruth as gt


def skeleton_line(uri: str, updated: object, **extra: object) -> str:
    result = {"data_object_s3_uri": uri, "updated_annotations": updated, "worker_id": "w1", **extra}
    return json.dumps(
        {"source-ref": uri, "job": {"label-results": [result]}, "job-metadata": {"type": "groundtruth/custom"}}
    )


def test_each_format_and_each_bad_line() -> None:
    skeleton = json.dumps([{"name": "p1", "annotations": [{"label": "nose", "x": 1, "y": 2.5}]}])
    bare_points = json.dumps([{"label": "nose", "x": 1, "y": 2}])
    lines = [
        skeleton_line("s3://b/1.jpg", skeleton, total_time_in_seconds=12, was_modified="true"),
        skeleton_line("s3://b/2.jpg", bare_points),
        "",
        "{not json",
        json.dumps({"source-ref": "s3://b/3.jpg", "a": {}, "a-metadata": {}, "b": {}, "b-metadata": {}}),
        json.dumps({"source-ref": "s3://b/4.jpg"}),
        skeleton_line("s3://b/5.jpg", "[{]"),
        skeleton_line("s3://b/6.jpg", json.dumps([{"annotations": [{"label": "nose", "x": "one", "y": 2}]}])),
        json.dumps(
            {
                "source-ref": "s3://b/7.jpg",
                "box": {"annotations": [{"class_id": 1, "left": 1, "top": 2, "width": 3, "height": 4}]},
                "box-metadata": {"class_map": {"1": "car"}, "type": "groundtruth/object-detection"},
            }
        ),
        json.dumps({"source-ref": "s3://b/8.jpg", "box": {"annotations": [{"class_id": 1}]}, "box-metadata": {}}),
        json.dumps([1, 2]),
    ]
    results, errors = gt.read_output_manifest(lines)
    assert [(r.line, r.kind, r.source) for r in results] == [
        (1, gt.SKELETON_TYPE, "s3://b/1.jpg"),
        (2, gt.SKELETON_TYPE, "s3://b/2.jpg"),
        (9, gt.BOX_TYPE, "s3://b/7.jpg"),
    ]
    first = results[0]
    # The job's own flag is kept as reported; Shoal decides `modified` once it knows what was exported.
    assert (first.worker, first.seconds, first.reported_modified, first.modified) == ("w1", 12.0, True, None)
    assert first.skeletons == [{"name": "p1", "annotations": [{"label": "nose", "x": 1, "y": 2.5}]}]
    assert results[1].skeletons[0]["annotations"] == [{"label": "nose", "x": 1, "y": 2}]
    assert results[2].boxes == [{"class": "car", "left": 1.0, "top": 2.0, "width": 3.0, "height": 4.0, "conf": None}]
    assert [(e.line, e.message.split(":")[0]) for e in errors] == [
        (4, "not JSON"),
        (5, "expected one label attribute with its '-metadata' block, found a, a-metadata, b, b-metadata"),
        (6, "expected one label attribute with its '-metadata' block, found nothing"),
        (7, "label-results[0].updated_annotations is not valid JSON"),
        (8, "label-results[0].updated_annotations[0].annotations[0] (nose) needs numeric x and y"),
        (10, "annotations[0] lacks left, top, width, height"),
        (11, "a manifest line must be a JSON object"),
    ]


def test_statistics_of_a_job() -> None:
    results = [
        gt.Result(1, "j", gt.SKELETON_TYPE, "a", worker="w1", seconds=10, modified=True, no_changes=False),
        gt.Result(2, "j", gt.SKELETON_TYPE, "b", worker="w1", seconds=20, modified=False, no_changes=True),
        gt.Result(3, "j", gt.SKELETON_TYPE, "c", worker="w2", seconds=60, modified=True, no_changes=False),
    ]
    stats = gt.LabelingStats.of(results)
    assert (stats.images, stats.mean_seconds, stats.median_seconds) == (3, 30.0, 20.0)
    assert (round(stats.modified_share, 3), round(stats.unchanged_share, 3)) == (0.667, 0.333)
    assert stats.workers["w1"] == {
        "images": 2.0,
        "mean_seconds": 15.0,
        "median_seconds": 15.0,
        "modified_share": 0.5,
        "reported_modified_share": 0.0,
    }
    assert gt.LabelingStats.of([]).images == 0
    assert "(the job's own flag" not in stats.summary()  # no flags given, none reported


def test_numbers_given_as_strings_are_numbers() -> None:
    updated = json.dumps([{"name": "p1", "annotations": [{"label": "nose", "x": "101", "y": " 7.5 "}]}])
    lines = [
        skeleton_line("s3://b/1.jpg", updated, total_time_in_seconds="37", was_modified="true"),
        skeleton_line("s3://b/2.jpg", updated, total_time_in_seconds="null", no_changes_needed="false"),
        skeleton_line("s3://b/3.jpg", updated, total_time_in_seconds=" 1e2 "),
    ]
    results, errors = gt.read_output_manifest(lines)
    assert errors == []
    assert [r.seconds for r in results] == [37.0, None, 100.0]
    assert results[0].skeletons[0]["annotations"] == [{"label": "nose", "x": 101.0, "y": 7.5}]
    assert (results[0].reported_modified, results[1].no_changes) == (True, False)
    assert gt.LabelingStats.of(results).mean_seconds == 68.5
    for text in ("nan", "inf", "", "1_000", "0x10", "true", "12 s"):
        assert gt.number(text) is None, text
    assert (gt.number(True), gt.number(None), gt.number(3), gt.number("-2.5")) == (None, None, 3.0, -2.5)


def test_modified_compares_the_exported_geometry_at_whole_pixels() -> None:
    """`100` against `100.0` (or 100.4) is the same pixel: not modified, whatever the job's flag says."""
    original = [
        {"name": "p1", "annotations": [{"label": "nose", "x": 100.0, "y": 50}, {"label": "neck", "x": 3, "y": 4}]}
    ]

    def line(points: list[dict[str, object]], name: str = "p1") -> str:
        updated = json.dumps([{"name": name, "annotations": points}])
        return skeleton_line("s3://b/1.jpg", updated, original_annotations=original, was_modified=True)

    nose, neck = {"label": "nose", "x": 100, "y": 50}, {"label": "neck", "x": 3, "y": 4}
    cases = {
        "same": line([nose, neck]),
        "sub-pixel": line([{**nose, "x": 100.4}, neck]),
        "moved": line([{**nose, "x": 101}, neck]),
        "point removed": line([nose]),
        "point added": line([nose, neck, {"label": "left_hip", "x": 1, "y": 1}]),
        "renamed": line([nose, neck], name=""),
    }
    results, errors = gt.read_output_manifest(cases.values())
    assert errors == []
    decided = {case: (r.modified, r.reported_modified) for case, r in zip(cases, results, strict=True)}
    assert decided == {
        "same": (False, True),
        "sub-pixel": (False, True),
        "moved": (True, True),
        "point removed": (True, True),
        "point added": (True, True),
        "renamed": (True, True),  # a new skeleton, and the exported one did not come back
    }
