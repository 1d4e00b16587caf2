"""The `shoal` command as people run it, as its own process: it finds a suite on non-default ports through the state
directory `shoal up` writes, reads what people read every day, and every failure is a few lines — code, reason,
field violations — with a non-zero exit and never a traceback."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import shoal
from PIL import Image
from shoal.kit.settings import StoreSettings
from shoal.runner.suite import ADMIN_KEY_FILE, ServicePorts, SuiteConfig

from tests.conftest import ADMIN_KEY, ServerThread, start_suite, unique

pytestmark = [pytest.mark.integration, pytest.mark.filterwarnings("ignore::DeprecationWarning")]


@dataclass
class Cli:
    state: Path
    env: dict[str, str]
    client: shoal.Client

    def __call__(self, *args: str, key: str | None = None) -> subprocess.CompletedProcess[str]:
        extra = ["--api-key", key] if key is not None else []
        result = subprocess.run(
            [sys.executable, "-m", "shoal.cli", *args, "--state-dir", str(self.state), *extra],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert "Traceback" not in result.stderr, result.stderr
        return result


@pytest.fixture
def cli(start_service: Callable[..., ServerThread], tmp_path: Path, redis_db: str) -> Cli:
    """A suite on random ports, described by a state directory as `shoal up` writes it (ports and admin key)."""
    store = StoreSettings(url=(tmp_path / "store").as_uri())
    started = start_suite(start_service, redis_db, store)
    state = tmp_path / "state"
    config = SuiteConfig(
        state_dir=str(state),
        services={name: ServicePorts(s.server.grpc_port, s.server.metrics_port) for name, s in started.items()},
    )
    config.save()
    (state / ADMIN_KEY_FILE).write_text(ADMIN_KEY)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHOAL_")} | {"SHOAL_LOG_LEVEL": "WARNING"}
    client = shoal.Client(api_key=ADMIN_KEY, addresses={n: s.target for n, s in started.items()}, show_progress=False)
    return Cli(state, env, client)


def _fill(client: shoal.Client, project: str) -> None:
    client.create_project(project, shoal.LabelClassMap.from_classnames(["car", "person"]))
    client.create_dataset(project, "d", embedding_dim=2, metadata_schema=[{"name": "weather", "type": "STRING"}])
    data = shoal.LabeledDataset()
    for i in range(4):
        frame = shoal.LabeledFrame(frame_id=f"f{i}")
        frame.add_image(sensor_id="cam", image_url=f"s3://b/{i}.jpg", width=64, height=48)
        frame.add_label_2d_bbox(
            sensor_id="cam", label_id=f"l{i}", classification="car", top=1, left=1, width=20, height=10
        )
        frame.add_user_metadata("weather", "rain" if i % 2 else "sun")
        frame.add_frame_embedding(embedding=[float(i), 1.0])
        data.add_frame(frame)
    bad = shoal.LabeledFrame(frame_id="bad")
    bad.add_image(sensor_id="cam", image_url="s3://b/x.jpg", width=64, height=48)
    bad.add_label_2d_bbox(sensor_id="cam", label_id="lx", classification="hexagon", top=1, left=1, width=2, height=2)
    data.add_frame(bad)
    client.create_or_update_dataset(project, "d", dataset=data, wait_until_finish=True)
    client.create_checkpoint(project, "d", "gold")
    inferences = shoal.Inferences()
    for i in range(4):
        inferred = shoal.InferencesFrame(frame_id=f"f{i}")
        inferred.add_inference_2d_bbox(
            sensor_id="cam", label_id=f"p{i}", classification="car", top=1, left=1, width=20, height=10, confidence=0.9
        )
        inferences.add_frame(inferred)
    client.create_or_update_inferences(project, "d", "model", inferences=inferences, wait_until_finish=True)


def test_everyday_reads_find_a_suite_on_other_ports(cli: Cli, tmp_path: Path) -> None:
    project = unique("cli")
    _fill(cli.client, project)
    where = ("--project", project, "--dataset", "d")

    listed = cli("list", "projects")
    assert listed.returncode == 0, listed.stderr
    assert project in listed.stdout
    assert "d" in cli("list", "datasets", "--project", project).stdout.split()
    versions = cli("list", "versions", *where).stdout
    assert "v1" in versions
    assert "[gold]" in versions
    assert "gold" in cli("list", "checkpoints", *where).stdout
    uploads = cli("list", "uploads", *where, "--errors").stdout
    assert "partially_failed" in uploads
    assert "UNKNOWN_CLASS" in uploads

    rows = [json.loads(line) for line in cli("frames", *where, "--filter", 'weather = "rain"').stdout.splitlines()]
    assert sorted(r["frame_id"] for r in rows) == ["f1", "f3"]

    coco_out = tmp_path / "coco.json"
    assert cli("export", "coco", *where, "--out", str(coco_out)).returncode == 0
    exported = json.loads(coco_out.read_text())
    assert len(exported["images"]) == 4
    assert len(exported["annotations"]) == 4
    frames_out = tmp_path / "frames.jsonl"
    assert cli("export", "frames", *where, "--version", "1", "--out", str(frames_out)).returncode == 0
    assert len(frames_out.read_text().splitlines()) == 4

    figures = cli("evaluate", *where, "--inference-set", "model", "--json")
    assert figures.returncode == 0, figures.stderr
    assert json.loads(figures.stdout)["metrics"]["AP50"] == pytest.approx(1.0)

    similar = cli("search", *where, "--frame", "f0", "-k", "2")
    assert similar.returncode == 0, similar.stderr
    assert similar.stdout.splitlines()[1].split()[0] == "f0"


def _png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (4, 3), (1, 2, 3)).save(out, format="PNG")
    return out.getvalue()


def test_failures_are_a_few_lines_and_a_nonzero_exit(cli: Cli, tmp_path: Path) -> None:
    project = unique("err")
    cli.client.create_project(project, shoal.LabelClassMap.from_classnames(["car"]))
    cli.client.create_dataset(project, "d")
    where = ("--project", project, "--dataset", "d")

    wrong_key = cli("list", "projects", key="shoal_0123456789abcdef_" + "A" * 43)
    assert wrong_key.returncode == 1
    assert wrong_key.stderr.startswith("error: UNAUTHENTICATED API_KEY_INVALID")
    assert len(wrong_key.stderr.splitlines()) <= 3

    unknown = cli("list", "versions", "--project", project, "--dataset", "dd")
    assert unknown.returncode != 0
    assert "no dataset 'dd'" in unknown.stderr

    missing = cli("import", "frames", *where, str(tmp_path / "nope.jsonl"))
    assert missing.returncode == 1
    assert "no such file" in missing.stderr

    not_json = tmp_path / "rows.jsonl"
    not_json.write_text('{"task_id": "a"}\nthis is not json\n')
    bad_rows = cli("import", "frames", *where, str(not_json))
    assert bad_rows.returncode == 1  # the line that is not JSON is named; the others are imported
    assert "rows.jsonl:2" in bad_rows.stdout or "line 2" in bad_rows.stdout, bad_rows.stdout
    assert "not JSON" in bad_rows.stdout

    bad_coco = tmp_path / "instances.json"
    bad_coco.write_text('{"images": [}')
    coco_run = cli("import", "coco", *where, str(bad_coco))
    assert coco_run.returncode == 1
    assert "not JSON" in coco_run.stderr

    # A mistyped dataset is not created by an upload; --create creates it.
    media = tmp_path / "media"
    media.mkdir()
    (media / "ok.png").write_bytes(_png())
    (media / "broken.png").write_bytes(_png()[:40])
    (media / "notes.txt").write_text("not media")
    typo = cli("assets", "upload", str(media), "--project", project, "--dataset", "dd")
    assert typo.returncode == 2
    assert "--create" in typo.stderr
    assert not cli.client.dataset_exists(project, "dd")
    uploaded = cli("assets", "upload", str(media), *where)
    assert uploaded.returncode == 1  # one file refused
    assert "skipped 1 files that are not media: notes.txt" in uploaded.stdout
    assert "broken.png: INVALID_ARGUMENT" in uploaded.stdout
    assert "is corrupt" in uploaded.stdout  # the violation's words, not only "1 field is invalid"

    # Nothing listens: a short message, not a long retry.
    dead = cli("list", "projects", "--address", "127.0.0.1:9", "--retries", "0", key=ADMIN_KEY)
    assert dead.returncode == 1
    assert "UNAVAILABLE" in dead.stderr
