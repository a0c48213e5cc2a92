"""Benchmark: all four metrics with ``compare`` vs the reference protocol vs one Gram product.

For each layer size (n_stimuli x n_features) it prints, in one run:

- ``compare``: :func:`workbench.metrics.compare` with svcca, tsvd_regression, rsa and cka on a
  float32 layer (its own Gram product included);
- ``reference``: a direct implementation of the reference study's protocol (randomized
  TruncatedSVD + scikit-learn CCA, one Ridge fit per held-out stimulus, ``np.corrcoef`` RDMs +
  ``scipy.stats.spearmanr``, centred-Gram CKA);
- ``gram``: one float32 ``X @ X.T`` on the same data, alternated with ``compare`` in the same
  process so that both see the same load (the best of ``--repeats`` runs of each is kept: on
  a shared machine the minimum is the least disturbed measurement);
- ``layer``: the same ``compare`` as one layer of a sweep sees it, the neural side prepared
  once for the region (``DerivedStats.from_input(Y, "Y")``, its RDM ranks and truncated SVD
  computed by a first call and reused); alternated with the other two as well;
- the ratios reference / compare (target >= 10), compare / gram (target <= 2) and
  layer / gram (target <= 1.3);
- the peak resident memory (``ru_maxrss``) of ``compare`` and of the reference protocol, each
  measured in its own subprocess (that of ``compare`` includes the data and the Gram runs).

The last case streams a 3,200 x 800,000 layer chunk by chunk into :class:`GramStats` (target
<= 1.5 GB peak); its "gram" time is the sum of the per-chunk ``chunk @ chunk.T`` products and
its "compare" time the sum of the ``GramStats.update`` calls plus the final ``compare``. The
reference protocol cannot hold that layer (10 GB in float32, more in its float64 copies), so
it is not run there.

Data: seeded; each layer is ``latent @ loadings + noise`` with a 64-dimensional latent whose
scales decay as 1/sqrt(rank), in float32; responses are 100 neuroids driven by the same latent
plus noise (float64). Timings are wall clock, on however many threads BLAS uses; the
reference protocol is timed once.

Usage::

    python benchmarks/bench_metrics.py            # all sizes, including the streamed layer
    python benchmarks/bench_metrics.py --quick    # only the small sizes
    python benchmarks/bench_metrics.py --no-stream --repeats 5   # the three sizes, 5 runs each
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np

SIZES = ((118, 100_000), (1000, 50_000), (3200, 20_000))
QUICK_SIZES = ((118, 100_000), (1000, 50_000))
STREAMED = (3200, 800_000)
STREAM_CHUNK = 8_000
N_LATENT = 64
N_NEUROIDS = 100
N_COMPONENTS = 40


def _latent(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng([seed, 0])
    scales = 1.0 / np.sqrt(np.arange(1, N_LATENT + 1))
    return (rng.standard_normal((n, N_LATENT)) * scales).astype(np.float32)


def layer_chunk(latent: np.ndarray, d: int, seed: int, index: int) -> np.ndarray:
    """One seeded float32 block of features (n x d): latent @ loadings + noise."""
    rng = np.random.default_rng([seed, 1, index])
    loadings = rng.standard_normal((N_LATENT, d), dtype=np.float32)
    chunk = rng.standard_normal((latent.shape[0], d), dtype=np.float32)
    chunk += latent @ loadings
    return chunk


def responses(latent: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng([seed, 2])
    weights = rng.standard_normal((N_LATENT, N_NEUROIDS))
    return latent.astype(np.float64) @ weights + rng.standard_normal((latent.shape[0], N_NEUROIDS))


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


# -- the reference protocol, written directly ------------------------------------------------
def reference_protocol(x: np.ndarray, y: np.ndarray, k: int = N_COMPONENTS) -> dict[str, float]:
    import scipy.stats
    from sklearn.cross_decomposition import CCA
    from sklearn.decomposition import TruncatedSVD
    from sklearn.linear_model import Ridge

    zx = TruncatedSVD(k, algorithm="randomized", random_state=0).fit_transform(x)
    zy = TruncatedSVD(k, algorithm="randomized", random_state=0).fit_transform(y) if y.shape[1] > k else y
    n_cca = min(zx.shape[1], zy.shape[1])
    u, v = CCA(n_components=n_cca, max_iter=1000).fit(zx, zy).transform(zx, zy)
    svcca = np.mean([np.corrcoef(u[:, i], v[:, i])[0, 1] for i in range(n_cca)])

    held_out = np.empty_like(y)
    for i in range(x.shape[0]):
        train = np.arange(x.shape[0]) != i
        held_out[i] = Ridge(alpha=1.0).fit(zx[train], y[train]).predict(zx[i : i + 1])[0]
    regression = np.mean([scipy.stats.pearsonr(held_out[:, j], y[:, j]).statistic for j in range(y.shape[1])])

    upper = np.triu_indices(x.shape[0], k=1)
    rsa = scipy.stats.spearmanr((1 - np.corrcoef(x))[upper], (1 - np.corrcoef(y))[upper]).statistic

    def centred_gram(a):
        a = a - a.mean(axis=0)
        return a @ a.T

    kx, ky = centred_gram(x), centred_gram(y)
    cka = np.sum(kx * ky) / np.sqrt(np.sum(kx * kx) * np.sum(ky * ky))
    return {"svcca": float(svcca), "tsvd_regression": float(regression), "rsa": float(rsa), "cka": float(cka)}


# -- one case, in its own process -------------------------------------------------------------
def run_case(method: str, n: int, d: int, seed: int, repeats: int = 3) -> dict:
    from workbench.metrics import GramStats, compare
    from workbench.metrics.derived import DerivedStats

    latent = _latent(n, seed)
    y = responses(latent, seed)
    out = {"method": method, "n": n, "d": d}
    if method == "streamed":
        stats = GramStats(n, dtype="float32")
        gram_s = update_s = 0.0
        for index, start in enumerate(range(0, d, STREAM_CHUNK)):
            chunk = layer_chunk(latent, min(STREAM_CHUNK, d - start), seed, index)
            t0 = time.perf_counter()
            chunk @ chunk.T
            gram_s += time.perf_counter() - t0
            t0 = time.perf_counter()
            stats.update(chunk)
            update_s += time.perf_counter() - t0
            del chunk
        t0 = time.perf_counter()
        out["scores"] = compare(stats, y, n_components=N_COMPONENTS)
        out["seconds"] = update_s + time.perf_counter() - t0
        out["gram_seconds"] = gram_s
    else:
        x = layer_chunk(latent, d, seed, 0)
        if method == "compare":
            # the Gram product, compare and compare with Y prepared (a sweep's layer) alternate,
            # so that all see the same machine load; the best of each is kept
            prepared = DerivedStats.from_input(y, "Y")
            compare(x, prepared, n_components=N_COMPONENTS)  # ranks and SVD of Y, once per region
            gram_times, compare_times, layer_times = [], [], []
            for _ in range(repeats):
                t0 = time.perf_counter()
                x @ x.T
                gram_times.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                out["scores"] = compare(x, y, n_components=N_COMPONENTS)
                compare_times.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                layer_scores = compare(x, prepared, n_components=N_COMPONENTS)
                layer_times.append(time.perf_counter() - t0)
            if layer_scores != out["scores"]:
                raise AssertionError(f"Y prepared once changed the scores: {layer_scores} != {out['scores']}")
            out["seconds"], out["gram_seconds"] = min(compare_times), min(gram_times)
            out["layer_seconds"] = min(layer_times)
            out["all_seconds"] = {"gram": gram_times, "compare": compare_times, "layer": layer_times}
        elif method == "reference":
            t0 = time.perf_counter()
            out["scores"] = reference_protocol(x, y)
            out["seconds"] = time.perf_counter() - t0
        else:
            raise ValueError(f"unknown method {method!r}")
    out["peak_rss_mb"] = peak_rss_mb()
    return out


def _in_subprocess(method: str, n: int, d: int, seed: int, repeats: int = 3) -> dict:
    cmd = [sys.executable, __file__, "--case", method, str(n), str(d), "--seed", str(seed),
           "--repeats", str(repeats)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _fmt_scores(scores: dict) -> str:
    return " ".join(f"{k}={v:.4f}" for k, v in scores.items())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="only the small sizes; no streamed layer")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3,
                        help="alternated runs of gram / compare / layer per size; the best is kept")
    parser.add_argument("--no-stream", action="store_true", help="skip the streamed 3,200 x 800,000 layer")
    parser.add_argument("--no-reference", action="store_true", help="skip the reference protocol")
    parser.add_argument("--case", nargs=3, metavar=("METHOD", "N", "D"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.case:
        method, n, d = args.case[0], int(args.case[1]), int(args.case[2])
        print(json.dumps(run_case(method, n, d, args.seed, args.repeats)))
        return 0

    header = (
        f"{'n x d':>16} {'compare s':>10} {'reference s':>12} {'gram s':>8} {'layer s':>8} {'ref/cmp':>8} "
        f"{'cmp/gram':>9} {'layer/gram':>11} {'peak MB cmp':>12} {'peak MB ref':>12}"
    )
    print(f"best of {args.repeats} alternated runs of gram / compare / layer (Y prepared once); "
          "reference timed once")
    print(header)
    for n, d in QUICK_SIZES if args.quick else SIZES:
        ours = _in_subprocess("compare", n, d, args.seed, args.repeats)
        ref = None if args.no_reference else _in_subprocess("reference", n, d, args.seed)
        ref_s = f"{ref['seconds']:12.3f}" if ref else f"{'not run':>12}"
        ratio = f"{ref['seconds'] / ours['seconds']:8.1f}" if ref else f"{'-':>8}"
        ref_mb = f"{ref['peak_rss_mb']:12.0f}" if ref else f"{'-':>12}"
        print(
            f"{f'{n} x {d}':>16} {ours['seconds']:10.3f} {ref_s} {ours['gram_seconds']:8.3f} "
            f"{ours['layer_seconds']:8.3f} {ratio} {ours['seconds'] / ours['gram_seconds']:9.2f} "
            f"{ours['layer_seconds'] / ours['gram_seconds']:11.2f} {ours['peak_rss_mb']:12.0f} {ref_mb}",
            flush=True,
        )
        runs = ours["all_seconds"]
        print(f"{'':>16}   all runs (s): " + "; ".join(
            f"{k} {', '.join(f'{t:.3f}' for t in v)}" for k, v in runs.items()))
        print(f"{'':>16}   compare:   {_fmt_scores(ours['scores'])}")
        if ref:
            print(f"{'':>16}   reference: {_fmt_scores(ref['scores'])}", flush=True)
    if not (args.quick or args.no_stream):
        n, d = STREAMED
        streamed = _in_subprocess("streamed", n, d, args.seed)
        print(
            f"{f'{n} x {d}':>16} {streamed['seconds']:10.3f} {'not run':>12} {streamed['gram_seconds']:8.3f} "
            f"{'-':>8} {streamed['seconds'] / streamed['gram_seconds']:9.2f} {streamed['peak_rss_mb']:12.0f} "
            f"{'-':>12}"
        )
        print(
            f"{'':>16}   streamed in {STREAM_CHUNK}-feature chunks into GramStats; the reference protocol "
            f"is not run: it needs the whole layer in memory ({n * d * 4 / 2**30:.1f} GiB as float32, "
            "more for its float64 corrcoef copy)"
        )
        print(f"{'':>16}   compare:   {_fmt_scores(streamed['scores'])}")
    print("targets: ref/cmp >= 10, cmp/gram <= 2, layer/gram <= 1.3, streamed peak <= 1536 MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
