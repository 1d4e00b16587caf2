"""Exact cosine search on the CPU through an int8 prefilter: every query is scored against every row in int8 (one
integer matrix product, which the CPU's dot-product instructions run several times faster than float32), the best
`candidates` rows per query are kept, re-scored exactly in float32, and the k best of those are the answer.

The answer is exact, not approximate. Quantisation moves any score by at most a bound known per query (the query's
own rounding error times the largest row norm, plus its norm times the largest row rounding error). A row left out
scored at most the weakest candidate's int8 score, so at most that plus the bound exactly. When the k-th exact score
among the candidates is above that, no row left out can beat it. A query for which that does not hold (rows packed
closer together than the bound) is searched again by the float32 kernel. So the results are those of the float32
search, with a fallback the benchmark counts.

The integer product runs in ONNX Runtime (`MatMulInteger`, uint8 × int8 → int32, with the CPU's VNNI kernels where
the CPU has them), and the per-query selection in faiss' heaps over the int32 scores, so no pass over the scores runs
in Python.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import threading
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

log = logging.getLogger("shoal.embedding.quantized")

#: Base rows per int8 block: the product of one query chunk with one block is a few tens of MiB of int32.
BLOCK_ROWS: Final = 65_536
#: Queries per integer product.
QUERY_CHUNK: Final = 256
#: Fewest rows a base needs before the int8 path is worth its copy (below, the float32 kernel is as quick).
MIN_ROWS: Final = 20_000
#: Slack added to the error bound for float32 rounding in the re-rank and the scales: a float32 dot product of unit
#: vectors is off by at most about dim × 6e-8.
ROUNDING_SLACK: Final = 1e-6
ROUNDING_SLACK_PER_DIM: Final = 1.2e-7
#: Largest k the prefilter serves: its candidates (8 k per query) are gathered per chunk of queries; larger k go to
#: faiss' float32 kernel, whose memory does not grow with k.
MAX_K: Final = 256
#: Bytes of candidate rows gathered at once for the re-rank (the query chunk shrinks to stay within it).
GATHER_BYTES: Final = 64 << 20
#: Memory the blocks being made may hold at once (their float32 working copies and int8 forms).
QUANTIZE_BYTES: Final = 1 << 30
#: Rows turned at once when the int8 blocks are made (a tile small enough to stay in the CPU's cache).
TRANSPOSE_TILE: Final = 1024
#: Largest dimension whose int8 scores cannot overflow int32 (dim × 127 × 127 < 2^31).
MAX_DIM: Final = 65_536


@dataclass(frozen=True)
class QuantizedBase:
    """A base of unit-length rows as int8 blocks: row ≈ `scale` × int8 row. `max_norm` and `max_error` bound every
    row's norm and rounding error (the norm of row − scale × int8 row)."""

    blocks: tuple[np.ndarray, ...]  # [dim, ≤ BLOCK_ROWS] int8, C-contiguous: the rows of each block, transposed
    rows: int
    dim: int
    scale: float
    max_norm: float
    max_error: float

    @property
    def nbytes(self) -> int:
        return sum(int(b.nbytes) for b in self.blocks)


def quantize(base: np.ndarray) -> QuantizedBase:
    """The int8 form of `base` ([rows, dim] float32): one scale for all values, so int8 scores compare across rows.
    Blocks are made on every core at once (NumPy releases the GIL in each pass)."""
    rows, dim = (int(s) for s in base.shape)
    peak = max(float(base.max()), -float(base.min())) if base.size else 0.0  # no |base| copy
    scale = peak / 127.0 if peak > 0 else 1.0
    starts = range(0, rows, BLOCK_ROWS)
    # Each block in the making holds a float32 copy of its rows and their int8 form: as many at once as cores, within
    # QUANTIZE_BYTES.
    workers = min(len(starts), os.cpu_count() or 1, max(1, QUANTIZE_BYTES // (BLOCK_ROWS * max(1, dim) * 5)))
    with ThreadPoolExecutor(max(1, workers)) as pool:
        made = list(pool.map(lambda start: _block(base[start : start + BLOCK_ROWS], scale), starts))
    return QuantizedBase(
        tuple(b for b, _, _ in made),
        rows,
        dim,
        scale,
        max((n for _, n, _ in made), default=0.0),
        max((e for _, _, e in made), default=0.0),
    )


def _block(part: np.ndarray, scale: float) -> tuple[np.ndarray, float, float]:
    """(the int8 block of `part`, transposed; its largest row norm; its largest row rounding error). The rows go
    through one float32 buffer in place (scale, round, clip; then the rounding error): a few passes, no temporaries."""
    buf = np.divide(part, np.float32(scale))
    np.rint(buf, out=buf)
    np.clip(buf, -127, 127, out=buf)
    block = np.empty((part.shape[1], len(part)), np.int8)
    for at in range(0, len(part), TRANSPOSE_TILE):  # tiles that stay in cache while they turn
        np.copyto(block[:, at : at + TRANSPOSE_TILE], buf[at : at + TRANSPOSE_TILE].T, casting="unsafe")
    buf *= np.float32(scale)
    np.subtract(part, buf, out=buf)
    max_error = float(np.sqrt(np.einsum("ij,ij->i", buf, buf).max())) if len(part) else 0.0
    max_norm = float(np.sqrt(np.einsum("ij,ij->i", part, part).max())) if len(part) else 0.0
    return block, max_norm, max_error


_SESSION: list[Any] = []
_LOCK = threading.Lock()
_MISSING: list[bool] = []


def available() -> bool:
    """Whether the int8 product can run exactly here: ONNX Runtime (and onnx, to describe the product) installed,
    and a CPU with VNNI dot-product instructions. Without VNNI, ONNX Runtime's x86 kernel adds uint8 × int8 pairs in
    16 bits with saturation, so a score could be wrong and the error bound would not hold. Finding the packages
    imports neither (that takes most of a second): the session is made by `warm`, or by the first search."""
    if not _MISSING:
        missing = False
        if any(importlib.util.find_spec(name) is None for name in ("onnx", "onnxruntime")):
            log.info("onnxruntime is not installed: exact cosine search runs on faiss' float32 kernel")
            missing = True
        if not missing and not cpu_has_vnni():
            log.info("the CPU has no VNNI instructions: exact cosine search runs on faiss' float32 kernel")
            missing = True
        _MISSING.append(missing)
    return not _MISSING[0]


def cpu_has_vnni(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether the CPU has AVX-512 VNNI or AVX-VNNI (read from the kernel's CPU flags; False where unknown)."""
    try:
        with open(cpuinfo, encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_vnni", "avx_vnni"})
    except OSError:
        pass
    return False


def warm() -> None:
    """Make the ONNX Runtime session now when the int8 product is available, so the first search does not pay for
    importing it. The embedding service runs this in the background at start-up. A session that cannot be made
    (a broken install) is logged, and exact cosine search then runs on faiss' float32 kernel."""
    if not available():
        return
    try:
        _session()
    except Exception:
        log.exception("ONNX Runtime could not make the int8 product: exact cosine search runs on faiss' float32 kernel")
        _MISSING[:] = [True]


def _session() -> Any:
    """The one ONNX Runtime session of the int8 product (sessions are safe to share between threads): a one-node
    graph, MatMulInteger, the form ONNX Runtime's VNNI kernels take."""
    with _LOCK:
        if not _SESSION:
            import onnxruntime as ort  # noqa: PLC0415
            from onnx import TensorProto, helper  # noqa: PLC0415

            graph = helper.make_graph(
                [helper.make_node("MatMulInteger", ["queries", "rows", "zero"], ["scores"])],
                "int8_scores",
                [
                    helper.make_tensor_value_info("queries", TensorProto.UINT8, [None, None]),
                    helper.make_tensor_value_info("rows", TensorProto.INT8, [None, None]),
                ],
                [helper.make_tensor_value_info("scores", TensorProto.INT32, [None, None])],
                initializer=[helper.make_tensor("zero", TensorProto.UINT8, [], [128])],
            )
            model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
            model.ir_version = 8
            options = ort.SessionOptions()
            options.intra_op_num_threads = os.cpu_count() or 1
            options.log_severity_level = 3
            _SESSION.append(
                ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
            )
        return _SESSION[0]


def _scores(queries_u8: np.ndarray, block: np.ndarray) -> np.ndarray:
    """int32 scores [queries, rows] of uint8 queries (zero point 128) against one transposed int8 block."""
    return _session().run(None, {"queries": queries_u8, "rows": block})[0]  # type: ignore[no-any-return]


def search(
    faiss: Any, quantized: QuantizedBase, base: np.ndarray, queries: np.ndarray, k: int, *, candidates: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cosine similarities [q, k] (best first) and row indices of unit-length `queries` among `base` (whose int8 form
    is `quantized`), and the mask of queries the prefilter could not settle, to be searched in float32 (their rows
    here are not the answer)."""
    nq = int(queries.shape[0])
    kk = min(k, quantized.rows)
    width = min(quantized.rows, candidates or max(8 * k, 128))
    chunk = max(1, min(QUERY_CHUNK, GATHER_BYTES // (width * quantized.dim * 4)))
    slack = ROUNDING_SLACK + ROUNDING_SLACK_PER_DIM * quantized.dim
    sims = np.full((nq, kk), -np.inf, dtype=np.float32)
    found = np.full((nq, kk), -1, dtype=np.int64)
    unsettled = np.zeros(nq, dtype=bool)
    for start in range(0, nq, chunk):
        q = np.ascontiguousarray(queries[start : start + chunk], dtype=np.float32)
        n = int(q.shape[0])
        peaks = np.abs(q).max(axis=1)
        q_scale = np.where(peaks > 0, peaks / 127.0, 1.0).astype(np.float32)
        q_ints = np.clip(np.rint(q / q_scale[:, None]), -127, 127).astype(np.int16)
        q_u8 = (q_ints + 128).astype(np.uint8)
        # Per-query heaps of the `width` best int8 scores, filled block by block in faiss' C++ heaps.
        best = np.full((n, width), np.iinfo(np.int32).min, dtype=np.int32)
        rows = np.full((n, width), -1, dtype=np.int64)
        heaps = faiss.int_minheap_array_t()
        heaps.nh, heaps.k = n, width
        heaps.val, heaps.ids = faiss.swig_ptr(best), faiss.swig_ptr(rows)
        heaps.heapify()
        offset = 0
        for block in quantized.blocks:
            scores = np.ascontiguousarray(_scores(q_u8, block))
            heaps.addn(int(block.shape[1]), faiss.swig_ptr(scores), offset, 0, n)
            offset += int(block.shape[1])
        heaps.reorder()  # best first; the weakest kept score is now the last column
        # Exact re-rank of the candidates.
        exact = np.einsum("qcd,qd->qc", base[rows], q, optimize=True).astype(np.float32)
        order = np.argsort(-exact, axis=1, kind="stable")[:, :kk]
        sims[start : start + n] = np.take_along_axis(exact, order, axis=1)
        found[start : start + n] = np.take_along_axis(rows, order, axis=1)
        if width >= quantized.rows:
            continue  # every row was a candidate
        # A row left out scored at most the weakest candidate in int8: its exact score is at most that plus the
        # bound. The k-th exact score must beat it.
        q_approx = q_ints.astype(np.float32) * q_scale[:, None]
        q_error = np.linalg.norm(q - q_approx, axis=1)
        q_norm = np.linalg.norm(q_approx, axis=1)
        bound = q_norm * quantized.max_error + q_error * quantized.max_norm + slack
        weakest = best[:, -1].astype(np.float64) * q_scale.astype(np.float64) * quantized.scale
        unsettled[start : start + n] = sims[start : start + n, kk - 1] <= weakest + bound
    return sims, found, unsettled


class Fallbacks:
    """How many queries the prefilter has sent to the float32 kernel (read by the benchmark and tests)."""

    def __init__(self) -> None:
        self._count = 0
        self._lock = threading.Lock()

    def add(self, n: int) -> None:
        with self._lock:
            self._count += n

    @property
    def count(self) -> int:
        return self._count

    def reset(self) -> None:
        with self._lock:
            self._count = 0


FALLBACKS: Final = Fallbacks()


class QuantizedCache:
    """The int8 form of prepared bases, kept beside them for as long as the base array lives."""

    def __init__(self) -> None:
        self._held: dict[int, tuple[weakref.ref[np.ndarray], QuantizedBase]] = {}
        self._lock = threading.Lock()

    def put(self, base: np.ndarray, quantized: QuantizedBase) -> None:
        key = id(base)
        with self._lock:
            self._held[key] = (weakref.ref(base), quantized)
        weakref.finalize(base, self._drop, key)

    def get(self, base: Any) -> QuantizedBase | None:
        with self._lock:
            held = self._held.get(id(base))
        if held is None or held[0]() is not base:
            return None
        return held[1]

    def _drop(self, key: int) -> None:
        with self._lock:
            self._held.pop(key, None)


CACHE: Final = QuantizedCache()
