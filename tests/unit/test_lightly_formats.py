"""The Lightly embeddings CSV and custom metadata JSON: byte-for-byte round trips, and every bad line named."""

from __future__ import annotations

import numpy as np
import pytest
from shoal.embedding import lightly
from shoal.kit.errors import InvalidArgument


def sample(n: int = 20, d: int = 6) -> str:
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((n, d)).astype(np.float32)
    vectors[0, 0] = 0.0
    data = lightly.EmbeddingsCsv([f"img_{i:03d}.jpg" for i in range(n)], vectors, [str(i % 3) for i in range(n)])
    return lightly.write_embeddings_csv(data)


def test_csv_round_trip_is_identical() -> None:
    text = sample()
    parsed = lightly.read_embeddings_csv(text, dimension=6)
    assert parsed.vectors.shape == (20, 6)
    assert parsed.filenames[3] == "img_003.jpg"
    assert parsed.labels[4] == "1"
    assert lightly.write_embeddings_csv(parsed) == text


@pytest.mark.parametrize(
    ("change", "where", "reason"),
    [
        (lambda lines: [lines[0].replace("labels", "label"), *lines[1:]], "csv line 1", "INVALID_CSV"),
        (
            lambda lines: [*lines[:3], lines[3].replace(",", ",nan,", 1).rsplit(",", 2)[0] + ",0", *lines[4:]],
            "csv line 4",
            "INVALID_CSV",
        ),
        (lambda lines: [*lines[:2], lines[2] + ",7", *lines[3:]], "csv line 3", "INVALID_CSV"),
        (
            lambda lines: [*lines[:5], lines[5].replace(lines[5].split(",")[1], "abc", 1), *lines[6:]],
            "csv line 6",
            "INVALID_CSV",
        ),
        (lambda lines: [*lines, lines[1]], "csv line 22", "INVALID_CSV"),
    ],
    ids=["header", "nan", "long row", "not a number", "repeated file"],
)
def test_bad_lines_are_named(change, where: str, reason: str) -> None:  # type: ignore[no-untyped-def]
    lines = sample().rstrip("\n").split("\n")
    with pytest.raises(InvalidArgument) as err:
        lightly.read_embeddings_csv("\n".join(change(lines)) + "\n")
    assert err.value.reason == reason
    assert where in {v.field for v in err.value.violations}


def test_dimension_must_match_the_dataset() -> None:
    with pytest.raises(InvalidArgument) as err:
        lightly.read_embeddings_csv(sample(), dimension=8)
    assert err.value.reason == "EMBEDDING_DIMENSION_MISMATCH"


def test_metadata_json_round_trip() -> None:
    meta = {"b.jpg": {"weather": "rain", "speed": 3.5}, "a.jpg": {"weather": "sun", "speed": 1}}
    text = lightly.write_metadata_json(meta)
    assert lightly.read_metadata_json(text) == meta
    assert lightly.write_metadata_json(lightly.read_metadata_json(text)) == text
    with pytest.raises(InvalidArgument):
        lightly.read_metadata_json('{"images": [{"id": 1, "file_name": "a"}], "metadata": [{"image_id": 2}]}')
