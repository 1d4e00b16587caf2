"""Size limits end to end: ingest refuses oversized values and frames per frame, and a dataset of frames at the
limits reads back whole through ListFrames and StreamFrames, whose responses are cut by bytes (and ListFrames refuses
page tokens it did not issue)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
import shoal
from shoal.ingest.server import build as build_ingest
from shoal.kit import paging
from shoal.kit.settings import StoreSettings
from shoal.kit.status import unpack
from shoal.storage.reads import RESPONSE_BYTES
from shoal.v1 import frame_pb2, ingest_service_pb2, upload_pb2, versioning_service_pb2
from shoal.versioning.server import build as build_versioning

from tests.conftest import ADMIN_KEY, ServerThread, unique

pytestmark = pytest.mark.integration

AUTH = (("x-api-key", ADMIN_KEY),)
MIB = 1024 * 1024


@pytest.fixture
def client(start_service: Callable[..., ServerThread], tmp_path: Path, redis_db: str) -> Iterator[shoal.Client]:
    store = StoreSettings(url=(tmp_path / "store").as_uri())
    versioning = start_service("versioning", build_versioning, redis_url=redis_db, store=store, run_worker=True)
    ingest = start_service("ingest", build_ingest, redis_url=redis_db, store=store)
    with shoal.Client(
        api_key=ADMIN_KEY, addresses={"versioning": versioning.target, "ingest": ingest.target}, show_progress=False
    ) as c:
        yield c


def heavy_frame(i: int, values: int = 60, value_bytes: int = 64_000) -> frame_pb2.Frame:
    """A frame just under the 4 MiB frame limit: many metadata values, each just under the 64 KiB value limit."""
    frame = frame_pb2.Frame(frame_id=f"f{i:03d}")
    frame.sensors.add(sensor_id="cam").image.url = f"s3://b/{i}.jpg"
    for k in range(values):
        frame.user_metadata[f"part{k:02d}"].string_value = chr(ord("a") + (i + k) % 26) * value_bytes
    return frame


def upload(client: shoal.Client, target: str, batches: list[list[frame_pb2.Frame]]) -> upload_pb2.Upload:
    requests = [ingest_service_pb2.UploadFramesRequest(start=ingest_service_pb2.UploadStart(target=target))]
    requests += [
        ingest_service_pb2.UploadFramesRequest(batch=ingest_service_pb2.FrameBatch(seq=seq, frames=frames))
        for seq, frames in enumerate(batches)
    ]
    replies = list(client.ingest.UploadFrames(iter(requests), metadata=AUTH, timeout=120))
    return client.wait_for_upload(replies[-1].summary.name, timeout=120, poll_seconds=0.1)


def test_oversized_values_fail_their_frames_and_large_datasets_read_back_whole(client: shoal.Client) -> None:
    p = unique("p")
    client.create_project(p, shoal.LabelClassMap.from_classnames(["car"]))
    client.create_dataset(p, "big")
    target = f"projects/{p}/datasets/big"

    # A 10 MB metadata string and a 5 MB frame of legal values fail alone, each naming its frame and field.
    huge_value = heavy_frame(900, values=1, value_bytes=10 * MIB)
    too_many = heavy_frame(901, values=80)
    done = upload(client, target, [[huge_value, too_many, heavy_frame(902, values=1)]])
    assert (done.frames_rejected, done.frames_committed) == (2, 1)
    errors = {(e.frame_id, e.reason, e.field) for e in client.list_upload_errors(done.name)}
    assert errors == {
        ("f900", "METADATA_VALUE_TOO_LARGE", "frames[0].user_metadata['part00']"),
        ("f900", "FRAME_TOO_LARGE", "frames[0]"),
        ("f901", "FRAME_TOO_LARGE", "frames[1]"),
    }

    # Twenty frames at the limits: about 77 MB, more than one 64 MiB message.
    frames = [heavy_frame(i) for i in range(20)]
    assert all(3.5 * MIB < f.ByteSize() < 4 * MIB for f in frames)
    done = upload(client, target, [frames[i : i + 4] for i in range(0, 20, 4)])
    assert (done.state, done.frames_committed) == (upload_pb2.UPLOAD_STATE_COMMITTED, 20)
    wanted = sorted([f.frame_id for f in frames] + ["f902"])

    listed: list[str] = []
    token = ""
    while True:
        page = client.versioning.ListFrames(
            versioning_service_pb2.ListFramesRequest(parent=target, page_size=1000, page_token=token),
            metadata=AUTH,
            timeout=60,
        )
        assert 0 < page.ByteSize() <= RESPONSE_BYTES + 1024
        listed += [f.frame_id for f in page.frames]
        if not (token := page.next_page_token):
            break
    assert listed == wanted

    streamed: list[frame_pb2.Frame] = []
    for message in client.versioning.StreamFrames(
        versioning_service_pb2.StreamFramesRequest(parent=target, batch_size=1000), metadata=AUTH, timeout=60
    ):
        assert 0 < message.ByteSize() <= RESPONSE_BYTES + 1024
        streamed += message.frames
    assert [f.frame_id for f in streamed] == wanted
    assert streamed[3] == frames[3]  # read back unchanged

    # A mask that leaves the frames small fits many in a page again.
    mask_page = client.versioning.ListFrames(
        versioning_service_pb2.ListFramesRequest(parent=target, page_size=1000, read_mask={"paths": ["frame_id"]}),
        metadata=AUTH,
        timeout=60,
    )
    assert [f.frame_id for f in mask_page.frames] == wanted
    assert not mask_page.next_page_token

    # A token ListFrames did not issue is the caller's error, naming the field: another listing's (a position), or
    # one whose payload was tampered with.
    for token in (paging.offset_token(3), paging.payload_token({"version": "1", "after": "f0"})):
        with pytest.raises(grpc.RpcError) as info:
            client.versioning.ListFrames(
                versioning_service_pb2.ListFramesRequest(parent=target, page_token=token), metadata=AUTH, timeout=60
            )
        details = unpack(info.value)
        assert (details.code, details.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_PAGE_TOKEN")
        assert [v.field for v in details.violations] == ["page_token"]
