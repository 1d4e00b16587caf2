"""The README's tour runs as written, top to bottom, on a fresh suite: every ```python block is executed in order in
one namespace, as a person pasting them into one session would. The files the tour names (an image, a point cloud,
Lightly's embeddings and metadata) are made first, as the reader would have their own. The suite listens on free
ports: the client finds it through `SHOAL_<SERVICE>_ADDRESS`, and the one block that dials a service by address has
its default address replaced by the suite's."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from PIL import Image
from shoal.embedding import lightly
from shoal.kit.settings import StoreSettings
from shoal.kit.status import unpack

from tests.conftest import ADMIN_KEY, ServerThread, start_suite
from tests.pcd import write_pcd

pytestmark = [pytest.mark.e2e, pytest.mark.filterwarnings("ignore::DeprecationWarning")]

README = Path(__file__).resolve().parents[2] / "README.md"


def python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL)


def _files(folder: Path) -> None:
    """What a reader of the tour has on disk."""
    image = io.BytesIO()
    Image.new("RGB", (64, 36), (90, 120, 200)).save(image, format="JPEG")
    (folder / "frame-0001.jpg").write_bytes(image.getvalue())
    points = np.zeros(100, dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("intensity", "<f4")])
    points["x"] = np.linspace(-5, 5, 100)
    (folder / "sweep.pcd").write_bytes(write_pcd(points, "binary"))
    names = [f"frame-{i:04d}.jpg" for i in range(1, 4)]
    vectors = np.array([[1.0, 0.1, 0.0, 0.5], [1.0, 0.2, 0.1, 0.5], [0.0, 1.0, 0.3, 0.0]], np.float32)
    csv = lightly.write_embeddings_csv(lightly.EmbeddingsCsv(names, vectors, ["0", "0", "1"]))
    (folder / "embeddings.csv").write_text(csv)
    images = [{"id": i, "file_name": n} for i, n in enumerate(names)]
    metadata = [{"image_id": i, "weather": w} for i, w in enumerate(["rain", "sun", "rain"])]
    (folder / "custom_metadata.json").write_text(json.dumps({"images": images, "metadata": metadata}))


def test_the_readme_tour_runs_as_written(
    start_service: Callable[..., ServerThread],
    tmp_path: Path,
    redis_db: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    store = StoreSettings(url=(tmp_path / "store").as_uri())
    started = start_suite(start_service, redis_db, store)
    for name, server in started.items():
        monkeypatch.setenv(f"SHOAL_{name.upper()}_ADDRESS", server.target)
    work = tmp_path / "work"
    work.mkdir()
    _files(work)
    monkeypatch.chdir(work)

    blocks = python_blocks(README.read_text())
    assert len(blocks) >= 8, "the tour lost its code"
    namespace: dict[str, object] = {"KEY": ADMIN_KEY}
    for number, block in enumerate(blocks, start=1):
        code = block.replace("127.0.0.1:50052", started["versioning"].target)
        try:
            exec(compile(code, f"README.md python block {number}", "exec"), namespace)
        except Exception as err:
            said = str(unpack(err)) if isinstance(err, grpc.RpcError) else f"{type(err).__name__}: {err}"
            pytest.fail(f"README python block {number} failed: {said}\n{block}")
    said = capsys.readouterr().out
    assert "UPLOAD_STATE" in said or "state:" in said  # the tour printed its upload
    evaluation: Any = namespace["evaluation"]
    assert evaluation.result.metrics["AP50"] == pytest.approx(1.0)  # the predictions overlap every car
    client: Any = namespace["client"]
    assert client.project_exists("pose")
    assert not client.dataset_exists("roads", "drive-1")  # the tour's last block deletes it
