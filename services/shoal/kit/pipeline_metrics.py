"""Prometheus metrics of the data path: what ingest accepts and queues, and what the versioning workers commit.

They are what an operator scales by: a queue depth that keeps growing needs more versioning replicas (up to the
number of stream partitions); refusals for a full queue mean uploads are waiting on commits.
"""

from __future__ import annotations

from typing import Final

from prometheus_client import Counter, Gauge, Histogram

INGEST_FRAMES: Final = Counter(
    "shoal_ingest_frames_total",
    "Frames, label updates and inference frames received in upload batches, by outcome (accepted, rejected).",
    ("outcome",),
)
INGEST_BATCHES_REFUSED: Final = Counter(
    "shoal_ingest_batches_refused_total",
    "Upload batches refused with RESOURCE_EXHAUSTED because the ingest queue was full.",
)
INGEST_QUEUE_DEPTH: Final = Gauge(
    "shoal_ingest_queue_depth_batches",
    "Batches on a stream partition not yet committed (consumer-group lag plus pending), measured when scraped.",
    ("partition",),
    multiprocess_mode="livemax",
)
VERSIONING_COMMITS: Final = Counter(
    "shoal_versioning_commits_total",
    "Versions committed by the queue workers (datasets and inference sets).",
)
VERSIONING_COMMITTED_BATCHES: Final = Counter(
    "shoal_versioning_committed_batches_total",
    "Upload batches applied by the queue workers.",
)
VERSIONING_COMMIT_SECONDS: Final = Histogram(
    "shoal_versioning_commit_seconds",
    "Time to apply a group of queued batches and commit it as one version.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
