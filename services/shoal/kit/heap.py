"""The garbage collector's settings for long-running service processes.

A service process imports gRPC, protobuf, Arrow and Lance: hundreds of thousands of objects that live as long as the
process. CPython's collector walks every tracked object in a full collection, and a batch of frames allocates enough
container objects (protobuf wrappers, lists, tuples) to set off collections many times a second: in a process with
that heap, collections took a fifth of the CPU of validating and encoding a batch. `settle` moves what exists once
start-up is done out of the collector's reach (it stays alive; it is simply never walked again) and lets the young
generation grow larger before it is collected. Cyclic garbage made afterwards is still collected as before.
"""

from __future__ import annotations

import gc
from typing import Final

# Allocations of tracked objects (net of those freed) that start a collection of the youngest generation (CPython's
# default is 700); the older generations keep their default ratio.
YOUNG_THRESHOLD: Final = 5_000


def settle() -> None:
    """Call once a process has imported and built what it serves with: its objects so far are frozen (never walked
    by a collection again), and young collections run less often."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
