"""Rows encoded by ingest's helper processes: what they write is what encoding in-process writes, the worker commits
from them, a helper that dies is replaced (the batch it held is encoded in-process), and none outlives its ingest
process."""

from __future__ import annotations

import gc
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
import shoal
from shoal.ingest.encoders import Encoders, encode_rows
from shoal.ingest.server import build as build_ingest
from shoal.kit import heap
from shoal.kit.objectstore import LocalObjectStore
from shoal.kit.settings import StoreSettings
from shoal.storage import batchrows, columnar, queue
from shoal.v1 import dataset_pb2
from shoal.versioning.server import build as build_versioning

from tests.conftest import ADMIN_KEY, ServerThread, process_alive, unique, wait_until
from tests.integration.test_ingest import CLASSES, make_frame

pytestmark = pytest.mark.integration

SCHEMA = [{"name": "weather", "type": "STRING"}, {"name": "speed", "type": "FLOAT"}]


def _rows_match(store: LocalObjectStore, upload: str, seqs: range) -> int:
    """Each batch's rows in the store are what encoding its stored batch here gives. (Map entries may come in
    another order: protobuf iterates a map in an order of its own in each process.)"""
    metadata = columnar.metadata_columns(
        dataset_pb2.MetadataSchema(
            fields=[
                dataset_pb2.MetadataField(name="weather", type=dataset_pb2.FIELD_TYPE_STRING),
                dataset_pb2.MetadataField(name="speed", type=dataset_pb2.FIELD_TYPE_FLOAT),
            ]
        )
    )
    total = 0
    for seq in seqs:
        body = store.get(queue.batch_object(upload, seq))
        rows = batchrows.decode(store.get(queue.rows_object(upload, seq)), body)
        here = batchrows.decode(encode_rows(body, False, 8, metadata), body)
        assert rows is not None
        assert here is not None
        assert batchrows.whole(rows)
        assert rows.schema == here.schema
        for name in rows.column_names:
            if name != "user_metadata":
                assert rows.column(name).equals(here.column(name)), name
        assert columnar.FRAMES.decode(rows) == columnar.FRAMES.decode(here)
        total += len(rows)
    return total


def test_helper_encoded_rows_are_exact_and_committed(
    start_service: Callable[..., ServerThread], tmp_path: Path, redis_db: str
) -> None:
    store_settings = StoreSettings(url=(tmp_path / "store").as_uri())
    store = LocalObjectStore(tmp_path / "store")
    # No worker yet: the rows stay in the store to be looked at before anything consumes them.
    versioning = start_service("versioning", build_versioning, redis_url=redis_db, store=store_settings)
    ingest = start_service("ingest", build_ingest, redis_url=redis_db, store=store_settings, ingest_encode_processes=1)
    encoders = ingest.server.services[0].servicer.uploads.encoders  # type: ignore[attr-defined]
    with shoal.Client(
        api_key=ADMIN_KEY,
        addresses={"versioning": versioning.target, "ingest": ingest.target},
        batch_size=100,
        show_progress=False,
    ) as client:
        p = unique("p")
        client.create_project(p, shoal.LabelClassMap.from_classnames(CLASSES))
        client.create_dataset(p, "d", metadata_schema=SCHEMA)
        target = f"projects/{p}/datasets/d"
        first = client.upload(target, [make_frame(i).to_proto() for i in range(250)])
        assert first.accepted == 250
        assert encoders.fallbacks == 0  # every batch was encoded by the helper
        helpers = encoders.pids()
        assert len(helpers) == 1
        assert helpers[0] != os.getpid()
        assert process_alive(helpers[0])
        assert _rows_match(store, first.name, range(3)) == 250

        # A helper killed between batches: the next batch finds its pool broken and is encoded here; the one after
        # goes to a new helper. Every batch has its rows either way.
        os.kill(helpers[0], signal.SIGKILL)
        wait_until(lambda: not process_alive(helpers[0]))
        second = client.upload(target, [make_frame(i).to_proto() for i in range(250, 550)])
        assert second.accepted == 300
        # The batches that found the pool broken (the first, and those sent before its helper's death was noticed)
        # were encoded here.
        assert 1 <= encoders.fallbacks <= 3
        assert _rows_match(store, second.name, range(3)) == 300
        assert encoders.pids()
        assert helpers[0] not in encoders.pids()

        # The worker commits from those rows: every frame reads back as it was sent.
        start_service("versioning", build_versioning, redis_url=redis_db, store=store_settings, run_worker=True)
        for report in (first, second):
            client.wait_for_upload(report.name, timeout=60, poll_seconds=0.05)
        stored = {f.frame_id: f for f in client.get_frames(p, "d")}
        assert len(stored) == 550
        for i in (0, 249, 250, 549):
            sent = make_frame(i).to_proto()
            sent.ClearField("change_type")  # stored frames have none
            assert stored[sent.frame_id] == sent


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's")
def test_helpers_die_with_their_ingest_process(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import asyncio, sys
        from shoal.ingest.encoders import Encoders
        from shoal.v1 import ingest_service_pb2

        async def main():
            encoders = Encoders(1)
            batch = ingest_service_pb2.FrameBatch(seq=0)
            batch.frames.add(frame_id="f1")
            await encoders.encode(batch.SerializeToString(), inference=False, embedding_dimension=0, metadata=[])
            print(encoders.pids()[0], flush=True)
            await asyncio.sleep(600)

        asyncio.run(main())
        """
    )
    with subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True) as parent:
        try:
            assert parent.stdout is not None
            helper = int(parent.stdout.readline())
            assert process_alive(helper)
            parent.kill()  # SIGKILL: nothing in the parent runs to stop its helpers
            parent.wait()
            wait_until(lambda: not process_alive(helper), timeout=10)
        finally:
            parent.kill()


def test_helpers_run_with_a_settled_heap() -> None:
    """A helper's imports (protobuf, Arrow) are frozen out of the collector's walks, as in a service process: the
    batches it encodes allocate enough objects to set off collections many times a second."""
    encoders = Encoders(1)
    try:
        pool = encoders._executor()
        frozen = pool.submit(gc.get_freeze_count).result(timeout=60)
        threshold = pool.submit(gc.get_threshold).result(timeout=60)
    finally:
        encoders.close()
    assert frozen > 10_000
    assert threshold[0] == heap.YOUNG_THRESHOLD
