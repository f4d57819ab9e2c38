"""Where cyprop's time goes on W1 and W2: instructions per training step, per function.

    python benchmarks/profile_core.py --workload W1 [--dtype float64] [--top 15]

Runs cyprop's training of the workload under ``valgrind --tool=callgrind``
twice, with two different numbers of epochs, and subtracts the per-function
instruction counts of the shorter run from the longer one. What is left is
the cost of the extra steps alone (imports, set-up and the interpreter's
start-up cancel out), divided by their number: instructions per step, by
function. Instruction counts do not depend on the machine's load, so this is
repeatable where timings are not. A step is one full-batch epoch in W1 and
one sample in W2.

Needs valgrind (Debian: ``apt-get install valgrind``). Valgrind must run the
real interpreter binary, not a launcher script such as a pyenv shim, so the
script starts ``os.path.realpath(sys.executable)`` and, from a virtual
environment, passes the environment's site-packages on ``PYTHONPATH``.
``--contender`` profiles a peer's module from ``peers/`` instead of cyprop,
for comparison (``--contender fann2_swig``).

``--run`` is the inner mode that valgrind executes; it trains and exits.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))

# (short epochs, long epochs) for each workload; steps per epoch below.
EPOCHS = {"W1": (2_000, 12_000), "W2": (1, 3)}


def train(workload_name, dtype, epochs, contender_module):
    sys.path.insert(0, HERE)
    from importlib import import_module

    import workloads
    from machine import limit_threads

    workload = workloads.TRAINING[workload_name]()
    workload.epochs = epochs
    contender = import_module(f"peers.{contender_module}").Contender()
    contender.version()
    variants = contender.variants(workload)
    options = next((o for _, o in variants if o.get("dtype") == dtype), variants[0][1])
    with limit_threads(1):
        run = contender.prepare(workload, 1, **options)
        run.train()


def _interpreter():
    """The real interpreter binary, and the environment that keeps this venv's packages."""
    executable = os.path.realpath(sys.executable)
    env = dict(os.environ)
    if sys.prefix != sys.base_prefix:
        # Running the base binary directly loses the venv: put its site-packages back.
        import site

        env["PYTHONPATH"] = os.pathsep.join(site.getsitepackages() + [env.get("PYTHONPATH", "")])
    return executable, env


def callgrind(workload_name, dtype, epochs, folder, contender_module):
    out = os.path.join(folder, f"callgrind.{workload_name}.{epochs}.out")
    executable, env = _interpreter()
    env["OPENBLAS_NUM_THREADS"] = "1"
    # The same string hashes in both runs: with random ones, the interpreter's
    # dict lookups differ between them by up to ~100 instructions per step.
    env["PYTHONHASHSEED"] = "0"
    command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
               executable, os.path.abspath(__file__), "--run", "--workload", workload_name,
               "--dtype", dtype, "--epochs", str(epochs), "--contender", contender_module]
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return out


def _short(path):
    """An object's file name with its folder: cyprop/_core... is not scipy's _core."""
    folder, base = os.path.split(path)
    return f"{os.path.basename(folder)}/{base}" if folder else base


LINE = re.compile(r"^\s*([\d,]+)\s+(?:\(\s*[\d.]+%\)\s+)?(\S.*)$")


def per_function(path):
    """Self instruction counts by function, from callgrind_annotate."""
    text = subprocess.run(["callgrind_annotate", "--auto=no", "--threshold=100", path],
                          check=True, capture_output=True, text=True).stdout
    counts, total = {}, None
    for line in text.splitlines():
        match = LINE.match(line)
        if not match:
            continue
        count, name = int(match.group(1).replace(",", "")), match.group(2).strip()
        if name.startswith("PROGRAM TOTALS") or name.startswith("Ir"):
            total = count if name.startswith("PROGRAM TOTALS") else total
            continue
        # "file:function [object]": keep the function and the object's base name.
        name = re.sub(r"^\S*?:", "", name, count=1) if ":" in name.split(" ")[0] else name
        name = re.sub(r"\[(.*?)\]", lambda m: "[" + _short(m.group(1)) + "]", name)
        counts[name] = counts.get(name, 0) + count
    return total, counts


def steps_per_epoch(workload_name):
    return 1 if workload_name == "W1" else 1797


def profile(workload_name, dtype, top, contender_module):
    if shutil.which("valgrind") is None:
        sys.exit("valgrind not found (Debian: apt-get install valgrind)")
    short, long = EPOCHS[workload_name]
    steps = (long - short) * steps_per_epoch(workload_name)
    with tempfile.TemporaryDirectory() as folder:
        total_short, short_counts = per_function(
            callgrind(workload_name, dtype, short, folder, contender_module))
        total_long, long_counts = per_function(
            callgrind(workload_name, dtype, long, folder, contender_module))
    difference = {name: long_counts.get(name, 0) - short_counts.get(name, 0)
                  for name in set(long_counts) | set(short_counts)}
    per_step_total = (total_long - total_short) / steps
    print(f"{workload_name}, {contender_module} {dtype}: {short:,} vs {long:,} epochs under "
          f"callgrind; {steps:,} extra steps cost {per_step_total:,.0f} instructions each")
    print(f"{'instructions/step':>18} {'share':>6}  function [object]")
    extra = total_long - total_short
    for name, count in sorted(difference.items(), key=lambda item: -item[1])[:top]:
        per_step = count / steps
        if per_step < 0.5:
            break
        print(f"{per_step:>18,.1f} {100 * count / extra:>5.1f}%  {name}")
    by_object = {}
    for name, count in difference.items():
        found = re.search(r"\[([^\]]*)\]\s*$", name)
        key = found.group(1) if found else "(no object named)"
        by_object[key] = by_object.get(key, 0) + count
    print()
    print(f"{'instructions/step':>18} {'share':>6}  by object")
    for name, count in sorted(by_object.items(), key=lambda item: -item[1]):
        if count >= 0.001 * extra:
            print(f"{count / steps:>18,.1f} {100 * count / extra:>5.1f}%  {name}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", choices=sorted(EPOCHS), default="W1")
    parser.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--contender", default="cyprop_net",
                        help="module in peers/ to profile instead of cyprop (e.g. fann2_swig)")
    parser.add_argument("--run", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--epochs", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        train(args.workload, args.dtype, args.epochs, args.contender)
    else:
        profile(args.workload, args.dtype, args.top, args.contender)


if __name__ == "__main__":
    main()
