"""Exact search, approximate indexes, duplicates, uniqueness and k-center greedy selection against brute force: on
the CPU through both exact engines (faiss' kernels and the chunked NumPy search), and on CuPy as well when a GPU is
present (SHOAL_TEST_BACKEND=gpu insists on one, =cpu leaves it out)."""

from __future__ import annotations

import importlib.util
import itertools
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from shoal.embedding import approximate, compute, quantized

CPU = compute.Backend.detect("cpu")
# A GPU, when one is present (SHOAL_TEST_BACKEND=gpu insists on one; cpu leaves it out).
_WANTED = os.environ.get("SHOAL_TEST_BACKEND", "auto")
GPU = compute.Backend.detect(_WANTED) if _WANTED != "cpu" else CPU
ENGINES = [("cpu", "int8-rerank"), ("cpu", "faiss"), ("cpu", "numpy")] + (
    [("gpu", "cupy")] if GPU.device == "gpu" else []
)
BACKEND = CPU  # the backend of the running test: set by `engine`


@pytest.fixture(autouse=True, params=ENGINES, ids=[name for _, name in ENGINES])
def engine(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test once per exact engine: the int8 prefilter (every cosine base, whatever its size), faiss' kernels
    and the NumPy chunked search on the CPU, and CuPy on a GPU when one is present."""
    device, name = request.param
    backend = GPU if device == "gpu" else CPU
    monkeypatch.setattr(sys.modules[__name__], "BACKEND", backend)
    if name == "numpy":
        monkeypatch.setattr(compute, "_FAISS", [None])
    elif name in ("faiss", "int8-rerank"):
        assert compute.faiss_module() is not None, "faiss-cpu is a server dependency: pip install 'shoal[server]'"
    if name == "int8-rerank":
        missing = [m for m in ("onnx", "onnxruntime") if importlib.util.find_spec(m) is None]
        assert not missing, f"{missing} are server dependencies: pip install 'shoal[server]'"
        if not quantized.cpu_has_vnni():
            pytest.skip("the int8 engine needs a CPU with VNNI dot-product instructions, which this one lacks")
        assert quantized.available()
        monkeypatch.setattr(quantized, "MIN_ROWS", 0)
        base = compute.prepare(backend, np.eye(4, dtype=np.float32), compute.COSINE)
        assert compute.exact_engine(backend, base=base, metric=compute.COSINE) == name
    else:
        monkeypatch.setattr(quantized, "MIN_ROWS", 10**12)
        assert compute.exact_engine(backend) == name
    return str(name)


def brute(x: np.ndarray, q: np.ndarray, metric: str) -> np.ndarray:
    if metric == compute.COSINE:
        xn = x / np.linalg.norm(x, axis=1, keepdims=True)
        qn = q / np.linalg.norm(q, axis=1, keepdims=True)
        return 1 - qn.astype(np.float64) @ xn.T.astype(np.float64)
    return np.sqrt(((q[:, None, :].astype(np.float64) - x[None].astype(np.float64)) ** 2).sum(-1))


@pytest.mark.parametrize("metric", [compute.COSINE, compute.EUCLIDEAN])
def test_a_base_prepared_from_parts_is_the_base_prepared_whole(metric: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """An index's vectors come as the chunks of a column: scaled from them straight into one array, they are what
    the joined array gives, zero rows included, across pieces smaller than a chunk too."""
    monkeypatch.setattr(compute, "UNIT_ROWS_CHUNK", 7)
    rng = np.random.default_rng(4)
    x = rng.standard_normal((50, 6)).astype(np.float32)
    x[[0, 23, 49]] = 0
    parts = [x[:20], x[20:21], x[21:50]]
    whole = BACKEND.to_host(compute.prepare(BACKEND, x, metric))
    np.testing.assert_array_equal(BACKEND.to_host(compute.prepare(BACKEND, parts, metric)), whole)
    if metric == compute.COSINE:
        norms = np.linalg.norm(whole, axis=1)
        np.testing.assert_allclose(np.delete(norms, [0, 23, 49]), 1, rtol=1e-6)
        assert not norms[[0, 23, 49]].any()
    else:
        np.testing.assert_array_equal(whole, x)


@pytest.mark.parametrize("metric", [compute.COSINE, compute.EUCLIDEAN])
@pytest.mark.parametrize("block", [10**9, 2_000])
def test_search_is_exact(metric: str, block: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compute, "SCORE_BLOCK_ELEMENTS", block)  # many chunks: the merge path is exercised
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3000, 24)).astype(np.float32)
    q = rng.standard_normal((25, 24)).astype(np.float32)
    base = compute.prepare(BACKEND, x, metric)
    dist, idx = compute.knn(BACKEND, base, q, 10, metric)
    ref = brute(x, q, metric)
    want = np.argsort(ref, axis=1, kind="stable")[:, :10]
    np.testing.assert_array_equal(np.sort(idx, axis=1), np.sort(want, axis=1))
    np.testing.assert_allclose(dist, np.take_along_axis(ref, idx, axis=1), atol=2e-5)
    assert (np.diff(dist, axis=1) >= -1e-6).all()  # nearest first


def test_rows_closer_than_int8_can_tell_apart_are_searched_again_exactly(engine: str) -> None:
    """Hundreds of rows a hair apart around the query: the int8 scores cannot settle their order, so those queries
    go to the float32 kernel, and the answer is still the exact one."""
    rng = np.random.default_rng(7)
    centre = rng.standard_normal(32).astype(np.float32)
    x = np.concatenate(
        [centre + 1e-4 * rng.standard_normal((600, 32)).astype(np.float32), rng.standard_normal((2000, 32))]
    ).astype(np.float32)
    q = np.stack([centre, rng.standard_normal(32).astype(np.float32)])
    quantized.FALLBACKS.reset()
    dist, idx = compute.knn(BACKEND, compute.prepare(BACKEND, x, compute.COSINE), q, 10, compute.COSINE)
    ref = brute(x, q, compute.COSINE)
    np.testing.assert_allclose(dist, np.sort(ref, axis=1)[:, :10], atol=2e-6)
    np.testing.assert_allclose(np.take_along_axis(ref, idx, axis=1), np.sort(ref, axis=1)[:, :10], atol=2e-6)
    if engine == "int8-rerank":
        assert quantized.FALLBACKS.count == 1  # the packed query, not the other one


def test_a_large_k_is_searched_in_float32_and_exactly(engine: str) -> None:
    """The prefilter's candidates grow with k; above its largest k the float32 kernel answers (same rows)."""
    rng = np.random.default_rng(8)
    x = rng.standard_normal((3000, 16)).astype(np.float32)
    q = rng.standard_normal((3, 16)).astype(np.float32)
    base = compute.prepare(BACKEND, x, compute.COSINE)
    k = quantized.MAX_K + 1
    dist, idx = compute.knn(BACKEND, base, q, k, compute.COSINE)
    ref = brute(x, q, compute.COSINE)
    np.testing.assert_allclose(dist, np.sort(ref, axis=1)[:, :k], atol=2e-6)
    np.testing.assert_allclose(np.take_along_axis(ref, idx, axis=1), np.sort(ref, axis=1)[:, :k], atol=2e-6)
    if engine == "int8-rerank":
        assert compute.exact_engine(BACKEND, base=base, metric=compute.COSINE, k=k) == "faiss"
        assert compute.exact_engine(BACKEND, base=base, metric=compute.COSINE, k=k - 1) == "int8-rerank"


def test_vnni_is_read_from_the_cpu_flags(tmp_path: Path) -> None:
    """Without VNNI, ONNX Runtime's x86 uint8 × int8 kernel saturates 16-bit pair sums: the int8 path needs it."""
    for flags, has in (
        ("fpu avx2 avx512f avx512_vnni", True),
        ("fpu avx2 avx_vnni", True),
        ("fpu avx2 avx512f", False),
    ):
        info = tmp_path / "cpuinfo"
        info.write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
        assert quantized.cpu_has_vnni(str(info)) is has
    assert quantized.cpu_has_vnni(str(tmp_path / "missing")) is False


def test_building_needs_no_onnx_import_and_warming_makes_the_session() -> None:
    """Knowing the int8 product is available imports nothing (an index build must not pay most of a second for ONNX
    Runtime); `warm`, which the service runs in the background at start-up, makes the session. In a fresh process,
    since this one may have imported it already."""
    script = (
        "import sys\n"
        "from shoal.embedding import compute, quantized\n"
        "import numpy as np\n"
        "quantized.MIN_ROWS = 0\n"
        "base = compute.prepare(compute.Backend.detect('cpu'), np.eye(8, dtype=np.float32), compute.COSINE)\n"
        "print(quantized.available(), quantized.CACHE.get(base) is not None, 'onnxruntime' in sys.modules)\n"
        "quantized.warm()\n"
        "print('onnxruntime' in sys.modules, len(quantized._SESSION))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120)
    available = quantized.available()
    assert out.stdout.split() == [str(available), str(available), "False", str(available), str(int(available))]


def test_the_cpu_backend_turns_numpy_huge_page_advice_off_unless_told() -> None:
    """NumPy's own switch returns its previous state: read it after each setting, then put NumPy's default back."""
    switch = np._core.multiarray._set_madvise_hugepage
    try:
        compute.advise_huge_pages("on")
        assert switch(True) is True
        compute.advise_huge_pages("off")
        assert switch(False) is False
        compute.Backend.detect("cpu")
        assert switch(False) is False
    finally:
        switch(True)
        compute.Backend.detect("cpu")


def test_search_honours_the_allowed_rows_and_pads() -> None:
    rng = np.random.default_rng(2)
    x = rng.standard_normal((200, 8)).astype(np.float32)
    allowed = np.zeros(200, bool)
    allowed[[3, 50, 77]] = True
    dist, idx = compute.knn(
        BACKEND, compute.prepare(BACKEND, x, "cosine"), x[:2], 5, "cosine", allowed=BACKEND.asarray(allowed)
    )
    assert set(idx[0, :3]) == {3, 50, 77}
    assert (idx[:, 3:] == -1).all()
    assert np.isinf(dist[:, 3:]).all()


def test_float16_storage_finds_the_same_neighbours_on_separated_data() -> None:
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2000, 32)).astype(np.float32)
    q = x[:20] + 0.01 * rng.standard_normal((20, 32)).astype(np.float32)
    half = compute.prepare(BACKEND, x, "cosine", dtype=np.float16)
    _, idx = compute.knn(BACKEND, half, q, 1, "cosine")
    np.testing.assert_array_equal(idx[:, 0], np.arange(20))


def test_k_center_greedy_matches_brute_force() -> None:
    rng = np.random.default_rng(4)
    x = rng.standard_normal((1500, 12)).astype(np.float32)
    picks, at = compute.k_center_greedy(BACKEND, compute.prepare(BACKEND, x, "euclidean"), 25, first=7)
    sel = [7]
    md = np.sqrt(((x - x[7]) ** 2).sum(1))
    for _ in range(24):
        r = int(np.argmax(md))
        sel.append(r)
        md = np.minimum(md, np.sqrt(((x - x[r]) ** 2).sum(1)))
    assert picks == sel
    assert at[0] == np.inf
    assert all(a >= b - 1e-4 for a, b in itertools.pairwise(at[1:]))  # distances never grow


def test_k_center_greedy_stops_at_the_minimum_distance_and_extends_a_selection() -> None:
    # Two tight clusters far apart: with a minimum distance of 1, two picks are all there is to take.
    rng = np.random.default_rng(5)
    x = np.concatenate([rng.normal(0, 0.01, (50, 4)), rng.normal(10, 0.01, (50, 4))]).astype(np.float32)
    picks, _ = compute.k_center_greedy(BACKEND, compute.prepare(BACKEND, x, "euclidean"), 10, minimum_distance=1.0)
    assert len(picks) == 2
    assert (picks[0] < 50) != (picks[1] < 50)
    # Starting from a selection in the first cluster, the first pick is in the second.
    more, _ = compute.k_center_greedy(BACKEND, compute.prepare(BACKEND, x, "euclidean"), 1, selected=[0])
    assert more[0] >= 50


def test_duplicates_group_near_copies() -> None:
    rng = np.random.default_rng(6)
    x = rng.standard_normal((300, 16)).astype(np.float32)
    x[10] = x[3]  # exact copy
    x[200] = x[3] + 1e-4  # near copy of the same
    x[150] = x[42] + 1e-4
    groups = compute.duplicates(BACKEND, compute.prepare(BACKEND, x, "euclidean"), 0.01, "euclidean")
    assert [sorted(g) for g, _ in groups] == [[3, 10, 200], [42, 150]]
    assert groups[0][1] == pytest.approx(np.linalg.norm(x[200] - x[3]), abs=1e-3)


def test_uniqueness_and_projection() -> None:
    rng = np.random.default_rng(8)
    x = np.concatenate([rng.normal(0, 0.1, (50, 8)), rng.normal(5, 0.1, (1, 8))]).astype(np.float32)
    u = compute.uniqueness(BACKEND, compute.prepare(BACKEND, x, "euclidean"), "euclidean")
    assert int(np.argmax(u)) == 50
    assert u[50] == pytest.approx(1.0)
    line = np.outer(np.linspace(-1, 1, 40), np.ones(8)).astype(np.float32) + rng.normal(0, 1e-3, (40, 8)).astype(
        np.float32
    )
    p = compute.pca_2d(BACKEND, BACKEND.asarray(line))
    assert p.shape == (40, 2)
    assert np.var(p[:, 0]) > 100 * np.var(p[:, 1])  # the data lies along one direction
    np.testing.assert_allclose(compute.pca_2d(BACKEND, BACKEND.asarray(line)), p)


@pytest.mark.parametrize("metric", [compute.COSINE, compute.EUCLIDEAN])
def test_approximate_index_finds_the_neighbours_and_round_trips(metric: str, tmp_path: object) -> None:
    """An IVF-Flat index measures its own recall at build, reaches the target, answers as the exact search does on
    clustered vectors, and reads back from the store as it was written."""
    from shoal.kit.objectstore import LocalObjectStore

    rng = np.random.default_rng(5)
    centres = rng.standard_normal((40, 16)).astype(np.float32) * 4
    x = centres[rng.integers(0, 40, 6000)] + rng.standard_normal((6000, 16)).astype(np.float32)
    base = compute.prepare(BACKEND, x, metric)
    host = BACKEND.to_host(base).astype(np.float32)
    made = approximate.build(host, metric)
    assert made.info.recall_at_10 >= approximate.RECALL_TARGET
    assert 1 <= made.info.probes <= made.info.lists
    q = x[:50] + 0.1 * rng.standard_normal((50, 16)).astype(np.float32)
    queries = q / np.linalg.norm(q, axis=1, keepdims=True) if metric == compute.COSINE else q
    dist, idx = made.search(queries.astype(np.float32), 10)
    exact_dist, exact_idx = compute.knn(BACKEND, base, q, 10, metric)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(idx.tolist(), exact_idx.tolist(), strict=True)])
    assert recall >= 0.9
    np.testing.assert_allclose(dist[:, 0], exact_dist[:, 0], atol=1e-3)  # float32 sums differ by engine
    store = LocalObjectStore(str(tmp_path))
    name = "projects/p/datasets/d/versions/3/indexes/frame"

    def load(born: int = 7, rows: int = 6000) -> approximate.Approximate | None:
        return approximate.load(store, name, born, metric=metric, rows=rows, dimension=16)

    approximate.save(store, name, 7, made)
    approximate.save(store, name, 7, made)  # again: the first file goes, one stays
    assert len(list((tmp_path / "indexes").rglob("*.ivf"))) == 1  # type: ignore[operator]
    back = load()
    assert back is not None
    assert back.info == made.info
    np.testing.assert_array_equal(back.search(queries.astype(np.float32), 10)[1], idx)
    assert load(born=8) is None  # a dataset made again under the name never reads it
    assert load(rows=6001) is None  # nor does an index of other rows
    approximate.delete(store, name, 7)
    assert load() is None
    assert not list((tmp_path / "indexes").rglob("*.ivf"))  # type: ignore[operator]


def test_duplicates_and_uniqueness_through_an_approximate_index_match_the_exact_ones() -> None:
    rng = np.random.default_rng(9)
    x = rng.standard_normal((3000, 12)).astype(np.float32)
    x[100] = x[7]
    x[2000] = x[7] + 0.005
    x[42] = x[41]
    base = compute.prepare(BACKEND, x, compute.EUCLIDEAN)
    made = approximate.build(BACKEND.to_host(base).astype(np.float32), compute.EUCLIDEAN)
    host = BACKEND.to_host(base).astype(np.float32)

    def neighbours(rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        return made.search(host[rows], k, made.info.probes)

    exact = compute.duplicates(BACKEND, base, 0.05, compute.EUCLIDEAN)
    assert [rows for rows, _ in exact] == [[7, 100, 2000], [41, 42]]
    assert [rows for rows, _ in compute.duplicates(BACKEND, base, 0.05, compute.EUCLIDEAN, neighbours=neighbours)] == [
        [7, 100, 2000],
        [41, 42],
    ]
    u_exact = compute.uniqueness(BACKEND, base, compute.EUCLIDEAN)
    u_approx = compute.uniqueness(BACKEND, base, compute.EUCLIDEAN, neighbours=neighbours)
    assert np.corrcoef(u_exact, u_approx)[0, 1] > 0.98
    assert int(np.argmax(u_exact)) == int(np.argmax(u_approx))


def test_an_index_reads_its_vectors_from_every_chunk_and_skips_frames_without_one() -> None:
    """A version's embedding column comes in chunks, some with frames that have no embedding: the index's rows are
    the frames with one, in table order, each with its own vector."""
    import pyarrow as pa
    from shoal.embedding import indexes

    kind = pa.list_(pa.float32(), 2)
    chunks = [
        pa.array([[1, 0], None, [0, 2]], kind),
        pa.array([None, None], kind),
        pa.array([[3, 3]], kind),
        pa.array([[0, 0], None], kind),
    ]
    table = pa.table({"frame_id": [f"f{i}" for i in range(8)], "embedding": pa.chunked_array(chunks)})
    parts, frame_ids, label_ids, rows = indexes._vectors(table, "frame", 2)
    assert frame_ids == ["f0", "f2", "f5", "f6"]
    assert rows.to_pylist() == [0, 2, 5, 6]
    assert label_ids == [""] * 4
    np.testing.assert_array_equal(np.concatenate(parts), [[1, 0], [0, 2], [3, 3], [0, 0]])
    base = BACKEND.to_host(compute.prepare(BACKEND, parts, compute.EUCLIDEAN))
    np.testing.assert_array_equal(base, [[1, 0], [0, 2], [3, 3], [0, 0]])
