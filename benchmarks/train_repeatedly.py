"""Train one workload with cyprop a few times in one process, for a sampling profiler.

    perf record -o perf.W3.data -- .venv/bin/python benchmarks/train_repeatedly.py --workload W3
    perf report -i perf.W3.data --sort dso,symbol --stdio | head -40

Builds the workload's data, then runs ``Network.fit`` as ``peers/cyprop_net.py``
does (one BLAS thread by default) ``--repeats`` times, and prints the median
and best time, the training loss of the last epoch (bench_peers.py's
"final loss" is measured after training instead) and how many blocks of a
split hidden layer one thread took from the other's share. Building the
data shows up in the profile too (the kernel's page clearing, numpy's
random fills); everything else is training.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import workloads
from machine import limit_threads
from peers.cyprop_net import Contender


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", default="W3", choices=sorted(workloads.TRAINING))
    parser.add_argument("--dtype", default=None,
                        help="float32 or float64 (default: the workload's)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    workload = workloads.TRAINING[args.workload]()
    dtype = args.dtype or workload.dtype
    contender = Contender()
    contender.version()  # loads cyprop and its BLAS, which threadpoolctl can only limit once loaded
    from cyprop import _core

    moved = _core.blocks_moved()
    times = []
    with limit_threads(args.threads):
        for _ in range(args.repeats):
            run = contender.prepare(workload, args.threads, dtype=dtype)
            start = time.perf_counter()
            run.train()
            times.append(time.perf_counter() - start)
    print(f"== {workload.name} {dtype}, {args.threads} BLAS thread(s): median "
          f"{statistics.median(times):.4f} s, best {min(times):.4f} s, loss over the last "
          f"epoch {float(run.history.loss[-1])!r}; blocks of hidden columns moved between "
          f"threads {_core.blocks_moved() - moved}")


if __name__ == "__main__":
    sys.exit(main())
