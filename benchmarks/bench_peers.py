"""cyprop against its peers on the same workloads, all in one process.

    python benchmarks/bench_peers.py [--workload W1|W2|W3|W4|inference|all|W3,W4,...]
                                     [--threads 1|2|1,2] [--repeats N]
                                     [--skip slow|NAME,...] [--budget SECONDS]

Contenders (one module each in ``benchmarks/peers/``): cyprop in float64 and
float32, the lesson's numpy loop (W1), a hand-written numpy minibatch
trainer, PyTorch, scikit-learn's MLP estimators, FANN through fann2 and
through cynn, genann, Tinn and KANN through cynn. Every contender of a
workload starts from the same initial weights (where its binding can load
them) and visits the samples in the same order, with the same
hyperparameters; ``workloads.py`` defines them and the common final loss.

The rows of a training workload run in rounds, each row once per round, so
that changes in the machine's load fall on every row alike; a row is timed
``--repeats`` times (``--repeats-fast`` if its first run took under 0.1 s),
fewer once its runs add up to ``--budget`` seconds. Only ``train()`` (for
inference, ``predict``) is timed: building the network, loading its weights
and converting the data happen before the clock starts. A contender that
cannot run prints why instead of a time.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time
import traceback
from importlib import import_module

import numpy as np

import workloads
from machine import describe, limit_threads, load_mkl, peer_versions
from peers import MODULES, NotYetAvailable, Unsupported

# Rows whose single run took over 5 s on the 2-core machine of README.md;
# ``--skip slow`` leaves them out.
SLOW = {("W1", "torch"), ("W2", "torch"), ("W2", "scikit-learn"), ("W4", "KANN (cynn)")}

INFERENCE_ROWS_BATCH1 = {"W3": 400, "W4": 100}


def load_contenders(names_to_skip):
    contenders = []
    for module_name in MODULES:
        module = import_module(f"peers.{module_name}")
        contender = module.Contender()
        if contender.name in names_to_skip or module_name in names_to_skip:
            continue
        try:
            contender.version_text = contender.version()
            contender.failure = None
        except Exception as error:  # import failures of any kind become a row
            contender.version_text = None
            contender.failure = f"cannot import: {type(error).__name__}: {error}"
        contenders.append(contender)
    return contenders


# At more than one thread, W3's and W4's timed runs start this long after the
# round's sgemm peak or the previous row, whose BLAS or OpenMP threads go on
# spinning on the cores for a while after their last call (OpenBLAS for about
# 2^28 cycles, Intel's OpenMP for its KMP_BLOCKTIME of 200 ms) and slow the
# next row's threads: cyprop's W3 at two threads took 332 ms (median of six)
# right after the peak's sgemm, 279 ms half a second later (benchmarks/README.md).
SETTLE_SECONDS = 0.5


def measure_peak(threads, size=2048, repeats=5):
    """Best float32 matmul rate (flop/s) of scipy's BLAS and of every library cyprop has
    loaded (its default, and MKL for its rows): the highest makes the limit."""
    from machine import sgemm_functions

    rng = np.random.default_rng(0)
    A = np.asfortranarray(rng.random((size, size), dtype=np.float32))
    B = np.asfortranarray(rng.random((size, size), dtype=np.float32))
    C = np.asfortranarray(np.empty((size, size), dtype=np.float32))
    best = np.inf
    for _ in range(repeats):
        for sgemm in sgemm_functions().values():
            start = time.perf_counter()
            sgemm(1.0, A, B, C)
            best = min(best, time.perf_counter() - start)
    return 2.0 * size ** 3 / best


def fmt_time(seconds):
    ms = seconds * 1e3
    if ms < 10:
        return f"{ms:.3f}"
    if ms < 1000:
        return f"{ms:.1f}"
    return f"{ms:.0f}"


def print_header(columns):
    print("  ".join(f"{title:>{width}}" if index else f"{title:<{width}}"
                    for index, (title, width) in enumerate(columns)))


TRAIN_COLUMNS = [("contender", 30), ("median ms", 10), ("best ms", 10), ("runs", 4),
                 ("final loss", 22), ("vs cyprop", 9), ("of limit", 11), ("note", 0)]


def train_row(name, times, loss, reference, limit_seconds, note):
    median, best = statistics.median(times), min(times)
    ratio = f"{median / reference:.2f}x" if reference else ""
    limit = (f"{100 * limit_seconds / median:.0f}%/{100 * limit_seconds / best:.0f}%"
             if limit_seconds else "")
    loss_text = f"{loss:.17g}" if loss is not None else "-"
    return (f"{name:<30}  {fmt_time(median):>10}  {fmt_time(best):>10}  {len(times):>4}  "
            f"{loss_text:>22}  {ratio:>9}  {limit:>11}  {note or ''}").rstrip()


def message_row(name, message):
    return f"{name:<30}  {message}"


def load_text():
    try:
        one, five, fifteen = os.getloadavg()
        return f"load average {one:.2f} {five:.2f} {fifteen:.2f}"
    except OSError:
        return "load average unknown"


class Row:
    """One contender variant of a training workload, timed over the rounds."""

    def __init__(self, contender, label, options):
        self.contender, self.label, self.options = contender, label, options
        self.times, self.message, self.run, self.limit = [], None, None, None

    @property
    def spent(self):
        return sum(self.times)


def run_training(workload, contenders, args, threads, peaks):
    """Time every row of ``workload`` in rounds: each round runs every row once.

    Rounds spread the machine's changing load evenly over the contenders; a row
    leaves the rounds once it has ``limit`` runs or its runs add up to
    ``--budget`` seconds. On W3 and W4 each round also times one large sgemm,
    and the best rate seen is the peak that the "of limit" columns use.
    """
    print()
    print(f"== {workload.describe()}")
    print(f"   {load_text()} at the start")
    rows, messages = [], []
    for contender in contenders:
        if contender.failure:
            messages.append(message_row(contender.name, contender.failure))
        elif "slow" in args.skip and (workload.name, contender.name) in SLOW:
            messages.append(message_row(contender.name, "skipped (--skip slow)"))
        else:
            try:
                rows.extend(Row(contender, label, options)
                            for label, options in contender.variants(workload))
            except Unsupported as reason:
                messages.append(message_row(contender.name, f"not run: {reason}"))
    needs_peak = workload.name in ("W3", "W4")
    round_peaks = []
    active = list(rows)
    round_index = 0
    while active:
        if needs_peak:
            round_peaks.append(measure_peak(threads, repeats=2))
            peaks.append(round_peaks[-1])
        for row in list(active):
            try:
                # Garbage is collected before the set-up, and the collector is off
                # while the run is timed, as timeit does. A collection right before
                # the timed call walks every object in the process and leaves the
                # caches cold for whatever runs next: on W1 that added about 0.2 ms
                # to cyprop's fit (Python-level work around the core's call) and
                # almost nothing to a single call into C (benchmarks/README.md).
                gc.collect()
                run = row.contender.prepare(workload, threads, **row.options)
                if needs_peak and threads > 1:
                    time.sleep(SETTLE_SECONDS)
                gc.disable()
                try:
                    start = time.perf_counter()
                    run.train()
                    row.times.append(time.perf_counter() - start)
                finally:
                    gc.enable()
            except NotYetAvailable as reason:
                row.message = str(reason)
            except Exception as error:
                row.message = f"failed: {type(error).__name__}: {error}"
                if args.verbose:
                    traceback.print_exc()
            if row.message:
                active.remove(row)
                continue
            if row.limit is None:
                row.limit = (max(args.repeats, args.repeats_fast) if row.times[0] < 0.1
                             else args.repeats)
            if len(row.times) >= row.limit or row.spent >= args.budget:
                active.remove(row)
                # The last run's trained network gives the final loss.
                row.loss = (run.final_loss() if hasattr(run, "final_loss")
                            else workloads.final_loss(workload, run.predict(workload.X)))
                row.note = getattr(run, "note", None)
            del run
        round_index += 1
    peak = max(peaks) if needs_peak else None
    flops = workload.training_flops()
    limit_seconds = flops / peak if peak else None
    if limit_seconds:
        print(f"   {flops:.4g} flops of matrix products; at the peak of {peak / 1e9:.1f} GFLOP/s "
              "(best sgemm 2048^2 seen so far at this thread count, of scipy's BLAS and "
              f"the libraries cyprop loaded) that is {limit_seconds * 1e3:.0f} ms (the limit)")
    print(f"   {round_index} rounds; 'vs cyprop' = row's median / median of cyprop "
          f"{workload.dtype} (above 1: cyprop is faster); 'final loss' = mean per-sample "
          "loss over the training set after training, from the row's own predictions; "
          "'of limit' = limit / median time, and limit / best time")
    print_header(TRAIN_COLUMNS)
    reference = next((statistics.median(row.times) for row in rows
                      if row.label == f"cyprop {workload.dtype}" and row.times
                      and not row.message), None)
    results = {}
    for row in rows:
        if row.message:
            print(message_row(row.label, row.message))
            continue
        results[row.label] = (statistics.median(row.times), min(row.times), row.loss)
        print(train_row(row.label, row.times, row.loss, reference, limit_seconds, row.note))
    for line in messages:
        print(line)
    print(f"   {load_text()} at the end", flush=True)
    return results


def run_inference(workload, contenders, args, threads, peak):
    """predict() throughput on ``workload``'s network: one sample per call, and 1024 per call."""
    n_single = INFERENCE_ROWS_BATCH1[workload.name]
    batch = workload.X[:1024]
    forward_flops = workload.forward_flops(1024)
    sizes = "-".join(str(n) for n in workload.layer_sizes)
    print()
    print(f"== inference on the {workload.name} network ({sizes}, {workload.hidden} hidden, "
          f"softmax output), initial weights")
    print(f"   batch 1: {n_single} calls of one sample each, time per sample; batch 1024: "
          f"one call on 1024 samples ({forward_flops:.3g} flops; limit "
          f"{forward_flops / peak * 1e3:.2f} ms at {peak / 1e9:.1f} GFLOP/s)")
    print("   'loss' = mean cross-entropy of the 1024 outputs; 'vs cyprop' against cyprop "
          f"{workload.dtype}; {load_text()} at the start")
    columns = [("contender", 30), ("b1 us/sample", 12), ("b1 best", 9), ("b1024 ms", 9),
               ("b1024 best", 10), ("of limit", 8), ("loss", 10), ("b1 vs", 7),
               ("b1024 vs", 8), ("note", 0)]
    print_header(columns)
    reference = None
    results = {}
    for contender in contenders:
        if contender.failure:
            print(message_row(contender.name, contender.failure))
            continue
        if not hasattr(contender, "inference_variants"):
            print(message_row(contender.name, "not run: no inference path"))
            continue
        try:
            variants = contender.inference_variants(workload)
        except Unsupported as reason:
            print(message_row(contender.name, f"not run: {reason}"))
            continue
        for label, options in variants:
            try:
                run = contender.prepare_inference(workload, threads, **options)
                if threads > 1:
                    time.sleep(SETTLE_SECONDS)
                run_dtype = getattr(run, "dtype", None) or np.dtype(options.get("dtype", "float32"))
                X = np.ascontiguousarray(batch, dtype=run_dtype)
                rows = [X[i:i + 1] for i in range(n_single)]
                predict = run.predict
                predict(X[:8])  # warm up
                single, full = [], []
                spent = 0.0
                for _ in range(max(args.repeats, 3)):
                    start = time.perf_counter()
                    for row in rows:
                        predict(row)
                    elapsed = time.perf_counter() - start
                    single.append(elapsed / n_single)
                    start = time.perf_counter()
                    outputs = predict(X)
                    full.append(time.perf_counter() - start)
                    spent += elapsed + full[-1]
                    if spent > args.budget:
                        break
            except NotYetAvailable as reason:
                print(message_row(label, str(reason)))
                continue
            except Exception as error:
                print(message_row(label, f"failed: {type(error).__name__}: {error}"))
                if args.verbose:
                    traceback.print_exc()
                continue
            outputs = np.asarray(outputs, dtype=np.float64)
            loss = workloads.final_loss(workload, outputs, slice(0, 1024))
            m1, m1024 = statistics.median(single), statistics.median(full)
            if label == f"cyprop {workload.dtype}":
                reference = (m1, m1024)
            results[label] = (m1, m1024)
            vs1 = f"{m1 / reference[0]:.2f}x" if reference else ""
            vs1024 = f"{m1024 / reference[1]:.2f}x" if reference else ""
            limit = f"{100 * forward_flops / peak / m1024:.0f}%"
            print(f"{label:<30}  {m1 * 1e6:>12.2f}  {min(single) * 1e6:>9.2f}  "
                  f"{m1024 * 1e3:>9.3f}  {min(full) * 1e3:>10.3f}  {limit:>8}  {loss:>10.6f}  "
                  f"{vs1:>7}  {vs1024:>8}  {getattr(run, 'note', '') or ''}".rstrip(), flush=True)
            del run
            gc.collect()
    print(f"   {load_text()} at the end")
    return results


def summarize(all_results, threads):
    lines = []
    for name in ("W3", "W4"):
        results = all_results.get(name, {})
        if "cyprop float32" in results and "cyprop float64" in results:
            f32, f64 = results["cyprop float32"][0], results["cyprop float64"][0]
            lines.append(f"{name}: cyprop float64 / float32 time = {f64 / f32:.2f}")
    if lines:
        print()
        print(f"-- float32 speed-up at {threads} thread(s): " + "; ".join(lines))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", default="all",
                        help="W1, W2, W3, W4, inference, all, or several joined by "
                             "commas (default all)")
    parser.add_argument("--threads", default="1",
                        help="BLAS threads: 1, 2, or 1,2 to run both (default 1)")
    parser.add_argument("--repeats", type=int, default=5,
                        help="timed runs per row (default 5)")
    parser.add_argument("--repeats-fast", type=int, default=30,
                        help="timed runs for rows under 0.1 s (default 30)")
    parser.add_argument("--budget", type=float, default=30.0,
                        help="stop repeating a row once its runs add up to this many "
                             "seconds (default 30)")
    parser.add_argument("--skip", default="",
                        help="comma-separated contenders (module or row name) to leave out; "
                             "'slow' leaves out the rows listed in SLOW")
    parser.add_argument("--no-exp-shim", action="store_true",
                        help="do not load the exp shim that lets cynn's Tinn and genann import")
    parser.add_argument("--verbose", action="store_true", help="print tracebacks of failures")
    args = parser.parse_args()
    args.skip = {name.strip() for name in args.skip.split(",") if name.strip()}
    thread_counts = [int(t) for t in args.threads.split(",")]

    if args.no_exp_shim:
        from peers import genann_cynn, tinn_cynn

        genann_cynn.ALLOW_SHIM = tinn_cynn.ALLOW_SHIM = False
    contenders = load_contenders(args.skip)
    mkl = None if "cyprop MKL" in args.skip else load_mkl()
    for line in describe():
        print(line)
    if mkl:
        print(f"cyprop's MKL rows: {mkl}")
    for line in peer_versions(contenders):
        print(line)
    print(f"command: {' '.join(sys.argv)}")

    every = ["W1", "W2", "W3", "W4", "inference"]
    names = every if args.workload == "all" else [n.strip() for n in args.workload.split(",")]
    unknown = [n for n in names if n not in every]
    if unknown:
        parser.error(f"unknown workload {', '.join(unknown)}; choose from {', '.join(every)}")
    built = {}

    def get(name):
        if name not in built:
            built[name] = workloads.TRAINING[name]()
        return built[name]

    for threads in thread_counts:
        with limit_threads(threads):
            # Best float32 matmul rates seen at this thread count (flop/s); the
            # largest is the machine's limit for W3, W4 and inference.
            peaks = []
            print()
            print(f"######## {threads} BLAS thread(s)")
            all_results = {}
            for name in names:
                if name == "inference":
                    peaks.append(measure_peak(threads))
                    for net in ("W3", "W4"):
                        run_inference(get(net), contenders, args, threads, max(peaks))
                else:
                    all_results[name] = run_training(get(name), contenders, args, threads, peaks)
            if peaks:
                print()
                print(f"-- peak float32 matmul at {threads} thread(s) (sgemm 2048^2, the best "
                      f"of scipy's BLAS and cyprop's, MKL included, best of {len(peaks)} rounds): "
                      f"{max(peaks) / 1e9:.1f} GFLOP/s; the median of the per-round "
                      f"measurements: {statistics.median(peaks) / 1e9:.1f} GFLOP/s")
            summarize(all_results, threads)


if __name__ == "__main__":
    main()
