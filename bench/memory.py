"""Benchmark of memory search: k=10 latency at 1k, 10k and 100k notes, beside a numpy scan; indexing rate.

    .venv/bin/python bench/memory.py                  # all sizes, synthetic clustered vectors
    .venv/bin/python bench/memory.py --sizes 1000 --distribution random

Why synthetic vectors for the big sizes: embedding 100k notes with the real model would take most of an
hour and measure the embedder, not the index. The clustered distribution (topic centres plus noise,
nearest-neighbour cosine about 0.6) resembles real sentence embeddings; `random` (isotropic) is the
worst case for the binary-quantised coarse pass. Queries are stored vectors plus noise, so each has
true near neighbours, and recall@10 is measured against the exact numpy answer in the same run.

Paths measured per size (see workbench/memory/index.py): `exact` (a full vec0 float scan), `coarse`
(vec0 bit scan for 100 candidates, then exact re-scoring), `auto` (what search uses: exact up to
EXACT_LIMIT notes, coarse above) and `hybrid` (auto + FTS5 + rank fusion, as MemoryStore.search does,
without reading the note files). The real embedder's throughput (notes per second, embedding plus
indexing) is measured on 200 generated notes when the GGUF is present. Target: auto p95 < 20 ms at 100k.
Times are wall clock and CPU time of the measuring thread: numpy's matrix product may use several
threads, so its CPU time under-counts it; read the wall-clock ratio for numpy on an idle machine.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from workbench.memory.fusion import content_words, fts_query, reciprocal_rank_fusion  # noqa: E402
from workbench.memory.index import EXACT_LIMIT, MemoryIndex  # noqa: E402

DIMS = 384
K = 10
WORDS = ("sales csv revenue region store order customer churn model plot theme encoding parquet sql join "
         "duckdb postgres report kpi survey weight holiday trend forecast budget invoice refund").split()


def vocabulary(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Note words: the topic words above plus 5,000 made-up terms, Zipf-distributed like real text, so
    the full-text half of a hybrid query matches a realistic share of notes rather than all of them."""
    words = np.array(WORDS + [f"term{i}" for i in range(5000)])
    weights = 1.0 / np.arange(1, len(words) + 1)
    return words, weights / weights.sum()


def synthetic(n: int, distribution: str, rng: np.random.Generator) -> np.ndarray:
    if distribution == "random":
        x = rng.standard_normal((n, DIMS), dtype=np.float32)
    else:
        centres = rng.standard_normal((max(10, n // 100), DIMS), dtype=np.float32)
        x = centres[rng.integers(0, len(centres), n)] + 0.9 * rng.standard_normal((n, DIMS), dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def queries(vectors: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    picked = vectors[rng.integers(0, len(vectors), count)]
    q = picked + np.float32(0.6 / np.sqrt(DIMS)) * rng.standard_normal(picked.shape, dtype=np.float32)
    return (q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32)


def percentiles(samples: list[float]) -> tuple[float, float]:
    ms = sorted(s * 1000 for s in samples)
    return statistics.median(ms), ms[min(len(ms) - 1, int(round(0.95 * (len(ms) - 1))))]


def build(path: Path, vectors: np.ndarray, rng: np.random.Generator) -> tuple[MemoryIndex, float]:
    index = MemoryIndex.open(path)
    index.use_embedder("synthetic", DIMS)
    words, weights = vocabulary(rng)
    drawn = rng.choice(len(words), (len(vectors), 30), p=weights)
    bodies = [" ".join(words[row]) for row in drawn]
    started = time.perf_counter()
    with index.write():
        for i, vector in enumerate(vectors):
            index.upsert(f"n{i}", 0, 0, "", f"note {i}", "", bodies[i], vector)
    return index, time.perf_counter() - started


CPU_TIMES: dict[int, list[float]] = {}


def timed(fn, qs: np.ndarray) -> tuple[list[float], list]:
    """Wall-clock times (and CPU times, kept aside: on a shared, busy machine wall time mostly measures
    the neighbours; CPU time is what the search itself costs)."""
    times, cpu, results = [], [], []
    for q in qs:
        started, started_cpu = time.perf_counter(), time.thread_time()
        results.append(fn(q))
        times.append(time.perf_counter() - started)
        cpu.append(time.thread_time() - started_cpu)
    CPU_TIMES[id(times)] = cpu
    return times, results


def bench_size(n: int, distribution: str, count: int, workdir: Path) -> None:
    rng = np.random.default_rng(n)
    vectors = synthetic(n, distribution, rng)
    index, build_s = build(workdir / f"bench-{n}.db", vectors, rng)
    qs = queries(vectors, count, rng)
    vocab, weights = vocabulary(rng)
    words = [" ".join(rng.choice(vocab, 3, p=weights)) for _ in range(count)]

    def numpy_scan(q):
        scores = vectors @ q
        top = np.argpartition(-scores, K)[:K]
        return (top[np.argsort(-scores[top])] + 1).tolist()  # rowids start at 1

    turn = iter(range(10**9))

    def hybrid(q):
        vec = index.vector_search(q, 30)
        lists = [(1.0, [r for r, _ in vec])]
        match = fts_query(index.informative_words(content_words(words[next(turn) % count])))
        if match:
            lists.append((0.25, index.text_search(match, 30)))
        fused = sorted(reciprocal_rank_fusion(lists).items(), key=lambda x: -x[1])[:K]
        return list(index.ids_of(r for r, _ in fused))

    truth_t, truth = timed(numpy_scan, qs)
    rows = [("numpy scan", truth_t, None)]
    for name, fn in (("exact", lambda q: index.vector_search(q, K, exact=True)),
                     ("coarse", lambda q: index.vector_search(q, K, exact=False)),
                     ("auto", lambda q: index.vector_search(q, K))):
        t, res = timed(fn, qs)
        recall = np.mean([len(set(truth[i]) & {r for r, _ in res[i]}) / K for i in range(count)])
        rows.append((name, t, recall))
    rows.append(("hybrid", timed(hybrid, qs)[0], None))
    base = percentiles(truth_t)[1]
    auto_path = "exact" if n <= EXACT_LIMIT else "coarse"
    print(f"\n{n:,} notes ({distribution}): indexed in {build_s:.1f} s = {n / build_s:,.0f} notes/s "
          f"(vec0 float + bit + FTS5, one transaction); auto uses {auto_path}")
    cpu_base = percentiles(CPU_TIMES[id(truth_t)])[1]
    print(f"  {'path':<11}{'p50 ms':>9}{'p95 ms':>9}{'p95/numpy':>11}{'cpu p50':>9}{'cpu p95':>9}"
          f"{'cpu p95/numpy':>15}{'recall@10':>11}")
    for name, t, recall in rows:
        p50, p95 = percentiles(t)
        c50, c95 = percentiles(CPU_TIMES[id(t)])
        rec = f"{recall:.3f}" if recall is not None else "-"
        print(f"  {name:<11}{p50:>9.2f}{p95:>9.2f}{p95 / base:>10.1f}x{c50:>9.2f}{c95:>9.2f}"
              f"{c95 / cpu_base:>14.1f}x{rec:>11}")
    index.close()


def bench_embedder(workdir: Path) -> None:
    from workbench.memory import MemoryStore
    from workbench.memory.embed import embedder_for
    from workbench.memory.model import find_embedding_model

    model = find_embedding_model()
    if model is None or model.kind != "sentence":
        print("\nreal embedder: skipped (no all-MiniLM-L6-v2 GGUF: bash packaging/embedding-model.sh)")
        return
    rng = np.random.default_rng(7)
    folder = workdir / "notes"
    folder.mkdir()
    for i in range(200):
        sentence = " ".join(rng.choice(WORDS, 25))
        (folder / f"note-{i}.md").write_text(f"---\ntitle: Note {i}\n---\n\n{sentence}.\n", encoding="utf-8")
    embedder = embedder_for(model)
    embedder.embed(["warm up"])
    started = time.perf_counter()
    store = MemoryStore(folder, workdir / "real.db", embedder=embedder)  # the open re-indexes all 200
    elapsed = time.perf_counter() - started
    t, _ = timed(lambda q: store.search(q, K), [" ".join(rng.choice(WORDS, 5)) for _ in range(50)])
    p50, p95 = percentiles(t)
    started = time.perf_counter()
    store.add("The sales CSV uses semicolons as separators and a comma as the decimal mark.")
    add_s = time.perf_counter() - started
    store.close()
    print(f"\nreal embedder ({model.name}): 200 notes embedded and indexed in {elapsed:.2f} s = "
          f"{200 / elapsed:.0f} notes/s; one add {add_s * 1000:.0f} ms; full search (embed query, hybrid, "
          f"read notes) p50 {p50:.1f} ms p95 {p95:.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 100_000])
    parser.add_argument("--distribution", choices=["clustered", "random"], default="clustered")
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--no-embedder", action="store_true", help="skip the real-embedder throughput")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="wb-bench-memory-") as tmp:
        for n in args.sizes:
            bench_size(n, args.distribution, args.queries, Path(tmp))
        if not args.no_embedder:
            bench_embedder(Path(tmp))


if __name__ == "__main__":
    main()
