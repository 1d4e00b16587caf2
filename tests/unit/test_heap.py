"""Service processes settle their heap once started: what start-up made is frozen out of the collector's walks, young
collections run less often, and garbage made afterwards is still collected."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from shoal.kit import heap


def test_settling_freezes_the_start_up_heap_and_still_collects_later_cycles() -> None:
    script = textwrap.dedent(
        """
        import gc, json, weakref
        import pyarrow  # a heap like a service's
        before = gc.get_freeze_count()
        from shoal.kit import heap
        heap.settle()

        class Node:
            pass

        a, b = Node(), Node()
        a.other, b.other = b, a  # a cycle made after settling
        gone = weakref.ref(a)
        del a, b
        gc.collect()
        print(json.dumps({
            "before": before, "frozen": gc.get_freeze_count(), "threshold": gc.get_threshold(),
            "enabled": gc.isenabled(), "cycle_collected": gone() is None,
        }))
        """
    )
    out = json.loads(subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout)
    assert out["before"] == 0
    assert out["frozen"] > 10_000  # the modules, classes and functions imported so far
    assert out["threshold"][0] == heap.YOUNG_THRESHOLD
    assert out["enabled"]
    assert out["cycle_collected"]
