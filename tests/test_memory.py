"""Memory: nothing leaks over repeated use, and training allocates nothing per batch.

Each measurement runs in a fresh interpreter, so that what the rest of the
test session allocated does not blur it, with ``PYTHONMALLOC=malloc``, so that
every Python object comes from the C heap being measured, not from Python's
own pools. Both read the C allocator's accounts, so they run on Linux only.
"""

import json
import os
import subprocess
import sys
import tempfile
import tracemalloc

import numpy as np
import pytest

from cyprop import Network

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="reads the Linux C allocator's accounts"
)

CYCLES = 1_000
WARM_UP_CYCLES = 300
# glibc's count of bytes in use drifts by a few tens of kilobytes as its free
# lists fragment (measured: 17-31 KB over 1,000 cycles on CPython 3.11 and
# 3.12, while mtrace showed the blocks allocated during the cycles and still
# live at 14.9 KB after 1,000 cycles and 16.2 KB after 3,000); a leak of 100
# bytes per cycle exceeds this bound.
MAX_HEAP_GROWTH = 100 * CYCLES
# Resident memory moves in whole pages and with fragmentation (measured:
# 217-324 KB over 1,000 cycles); a leak of 1 KiB per cycle, such as a lost
# activation buffer, exceeds this bound.
MAX_RSS_GROWTH = 1024 * CYCLES

# fit, predict, save and load over and over; prints what the allocator and the
# kernel report before and after the measured cycles.
LEAK_CHILD = r"""
import ctypes, gc, json, os, sys

import numpy as np

from cyprop import Network


FIELDS = ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
          "fordblks", "keepcost")


class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in FIELDS]


class MallInfo(ctypes.Structure):
    _fields_ = [(name, ctypes.c_int) for name in FIELDS]


def heap_meter():
    # The sanitizer's allocator, when the process runs under AddressSanitizer
    # (glibc's accounts then say nothing), else glibc's own.
    libc = ctypes.CDLL(None)
    sanitizer = getattr(libc, "__sanitizer_get_current_allocated_bytes", None)
    if sanitizer is not None:
        sanitizer.restype = ctypes.c_size_t
        return "AddressSanitizer", sanitizer
    mallinfo = getattr(libc, "mallinfo2", None)
    if mallinfo is not None:
        mallinfo.restype = MallInfo2
    else:  # before glibc 2.33: the same fields as int
        mallinfo = getattr(libc, "mallinfo", None)
        if mallinfo is None:
            return None, None
        mallinfo.restype = MallInfo

    def live_bytes():
        info = mallinfo()
        return info.uordblks + info.hblkhd  # in use, in the heap and in mmapped blocks

    return "glibc", live_bytes


def resident_bytes():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


directory, warm_up, cycles = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
allocator, heap_bytes = heap_meter()
if heap_bytes is None or heap_bytes() == 0:  # a C library that keeps no accounts
    print(json.dumps({"allocator": None}))
    sys.exit(0)

rng = np.random.default_rng(0)
X = rng.standard_normal((64, 6))
y = rng.standard_normal((64, 2))
sample_weight = rng.uniform(0.5, 2.0, 64)
path = os.path.join(directory, "net.cyprop")


def cycle(net):
    net.fit(X, y, epochs=2, batch_size=16, optimizer="adam", sample_weight=sample_weight)
    net.predict(X)
    net.save(path)
    return Network.load(path)


net = Network([6, 12, 2], activation="tanh", output_activation="identity", seed=0)
for _ in range(warm_up):
    net = cycle(net)
gc.collect()
heap_before, rss_before = heap_bytes(), resident_bytes()
for _ in range(cycles):
    net = cycle(net)
gc.collect()
heap_after, rss_after = heap_bytes(), resident_bytes()
print(json.dumps({"allocator": allocator, "heap_before": heap_before, "heap_after": heap_after,
                  "rss_before": rss_before, "rss_after": rss_after}))
"""

# Counts every heap allocation (C and, with PYTHONMALLOC=malloc, Python)
# with glibc's mtrace, which libc_malloc_debug.so provides when preloaded:
# once around each call of the core's training loop, and once around a
# whole fit, for fits of 1 to 201 epochs of 1 to 32 batches.
EPOCH_CHILD = r"""
import ctypes, gc, json, os, sys

import numpy as np

from cyprop import Network
from cyprop._kernels import kernels_for

directory = sys.argv[1]
libc = ctypes.CDLL(None)
try:
    debug = ctypes.CDLL("libc_malloc_debug.so.0")
except OSError:  # before glibc 2.34, libc itself traces
    mtrace, muntrace = libc.mtrace, libc.muntrace
else:
    # Since glibc 2.34 libc's own mtrace does nothing, and the debug library
    # exports the working one only under a version name.
    libc.dlvsym.restype = ctypes.c_void_p
    libc.dlvsym.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p]
    mtrace, muntrace = (
        ctypes.CFUNCTYPE(None)(libc.dlvsym(debug._handle, name, b"GLIBC_2.2.5"))
        for name in (b"mtrace", b"muntrace"))


def count_allocations(function, *args, **kwargs):
    path = os.path.join(directory, f"trace-{os.getpid()}-{count_allocations.calls}")
    count_allocations.calls += 1
    os.environ["MALLOC_TRACE"] = path  # read by mtrace
    mtrace()
    try:
        result = function(*args, **kwargs)
    finally:
        muntrace()
    # Lines "@ caller + address size" are allocations; "> ..." the new block of a realloc.
    with open(path) as trace:
        count = sum(1 for line in trace if line.split()[2:3] in (["+"], [">"]))
    os.unlink(path)
    return count, result


count_allocations.calls = 0

if count_allocations(bytearray, 1 << 20)[0] < 1:
    print(json.dumps({"tracing": False}))
    sys.exit(0)

kernels = kernels_for(np.dtype(np.float64))
train_epochs = kernels.train_epochs
per_call = []


def counted_train_epochs(*args, **kwargs):
    count, result = count_allocations(train_epochs, *args, **kwargs)
    per_call.append(count)
    return result


rng = np.random.default_rng(0)
X = rng.standard_normal((32, 4))
y = rng.standard_normal((32, 1))
results = []
for epochs, batch_size in [(1, 32), (1, 1), (201, 32), (201, 1)]:
    net = Network([4, 8, 1], activation="tanh", output_activation="identity", seed=0)
    options = dict(batch_size=batch_size, optimizer="adam", learning_rate=0.01)
    net.fit(X, y, epochs=1, **options)  # first-call allocations out of the way
    gc.collect()
    whole_fit = count_allocations(net.fit, X, y, epochs=epochs, **options)[0]
    kernels.train_epochs = counted_train_epochs
    try:
        net.fit(X, y, epochs=epochs, **options)
    finally:
        kernels.train_epochs = train_epochs
    results.append({"epochs": epochs, "batch_size": batch_size,
                    "batches": epochs * -(-len(X) // batch_size),
                    "fit": whole_fit, "core_calls": list(per_call)})
    per_call.clear()
print(json.dumps({"tracing": True, "results": results}))
"""


def run_child(code, *args, env=None):
    """Run ``code`` in a fresh interpreter; returns the JSON it printed last."""
    environment = {**os.environ, "PYTHONMALLOC": "malloc", **(env or {})}
    result = subprocess.run([sys.executable, "-c", code, *map(str, args)],
                            capture_output=True, text=True, env=environment, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def scratch_directory():
    """A temporary directory in memory where there is one: save() calls fsync."""
    shm = "/dev/shm"
    in_memory = os.path.isdir(shm) and os.access(shm, os.W_OK)
    return tempfile.TemporaryDirectory(dir=shm if in_memory else None)


def mapped_files():
    """Paths of the files mapped into this process."""
    with open("/proc/self/maps") as maps:
        return {line.split()[-1] for line in maps if "/" in line}


def under_address_sanitizer():
    return any("libasan" in os.path.basename(path) for path in mapped_files())


def test_memory_stays_flat_over_fit_predict_save_load_cycles():
    # Without a per-thread cache of freed blocks, glibc's count of bytes in
    # use is the bytes the program holds (ignored by other allocators).
    with scratch_directory() as directory:
        measured = run_child(LEAK_CHILD, directory, WARM_UP_CYCLES, CYCLES,
                             env={"GLIBC_TUNABLES": "glibc.malloc.tcache_count=0"})
    if measured["allocator"] is None:
        pytest.skip("no allocator statistics (needs glibc or AddressSanitizer)")
    heap_growth = measured["heap_after"] - measured["heap_before"]
    rss_growth = measured["rss_after"] - measured["rss_before"]
    print(f"{CYCLES} cycles after {WARM_UP_CYCLES} of warm-up ({measured['allocator']}): "
          f"live heap {measured['heap_before']:,} -> {measured['heap_after']:,} bytes "
          f"({heap_growth / CYCLES:+.1f} per cycle); resident {measured['rss_before']:,} -> "
          f"{measured['rss_after']:,} bytes ({rss_growth / CYCLES:+.1f} per cycle)")
    assert heap_growth < MAX_HEAP_GROWTH, (
        f"the live heap grew by {heap_growth:,} bytes over {CYCLES} cycles "
        f"({heap_growth / CYCLES:.0f} bytes per cycle)")
    if measured["allocator"] != "AddressSanitizer":  # its quarantine holds freed memory
        assert rss_growth < MAX_RSS_GROWTH, (
            f"resident memory grew by {rss_growth:,} bytes over {CYCLES} cycles "
            f"({rss_growth / CYCLES:.0f} bytes per cycle)")


def test_training_allocates_nothing_per_batch():
    if under_address_sanitizer():
        pytest.skip("AddressSanitizer's allocator replaces the one mtrace watches")
    # Since glibc 2.34 mtrace works only with libc_malloc_debug.so preloaded.
    libc = next((path for path in mapped_files() if os.path.basename(path).startswith("libc.so")),
                None)
    if libc is None:
        pytest.skip("needs glibc's mtrace")
    debug_library = os.path.join(os.path.dirname(libc), "libc_malloc_debug.so.0")
    preload = os.environ.get("LD_PRELOAD", "")
    if os.path.exists(debug_library):
        preload = f"{debug_library} {preload}".strip()
    with scratch_directory() as directory:
        measured = run_child(EPOCH_CHILD, directory, env={"LD_PRELOAD": preload})
    if not measured["tracing"]:
        pytest.skip("glibc's mtrace recorded nothing in this process")
    results = {(r["epochs"], r["batch_size"]): r for r in measured["results"]}
    for r in measured["results"]:
        print(f"{r['epochs']:>3} epochs of {r['batches'] // r['epochs']:>2} batches: fit made "
              f"{r['fit']} allocations, the core's training loop {r['core_calls']}")

    # The core's training loop makes the same allocations (converting its
    # arguments, building its result) for 1 batch as for 6,432: +1 allows for
    # an int beyond the small-int cache.
    one_batch = max(results[1, 32]["core_calls"])
    for r in measured["results"]:
        assert max(r["core_calls"]) <= one_batch + 1, r
    # fit as a whole allocates per epoch only what it records (the History),
    # the same with 1 batch per epoch as with 32, and far less than one
    # allocation per batch.
    per_epoch = {batch_size: (results[201, batch_size]["fit"] - results[1, batch_size]["fit"]) / 200
                 for batch_size in (32, 1)}
    print(f"fit: {per_epoch[32]:.2f} allocations per epoch of 1 batch, "
          f"{per_epoch[1]:.2f} per epoch of 32 batches")
    assert per_epoch[1] < 32 / 4, per_epoch
    assert abs(per_epoch[1] - per_epoch[32]) < 2, per_epoch


@pytest.mark.parametrize("epochs", [1, 3])
def test_shuffling_holds_one_sample_order_of_8_bytes_a_sample(epochs):
    """Beyond X, y and the batch buffers, a shuffled fit of 2**20 samples (one
    epoch per call of the training loop) holds one order: 8 bytes a sample."""
    n_samples = 1 << 20
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n_samples, 1)).astype(np.float32)
    y = (X > 0).astype(np.float32)
    net = Network([1, 2, 1], dtype="float32", seed=0)
    net.fit(X[:64], y[:64], batch_size=32)  # the first fit's one-time allocations
    tracemalloc.start()
    try:
        net.fit(X, y, epochs=epochs, batch_size=256, learning_rate=0.01)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert 8 * n_samples <= peak < 8 * n_samples + (1 << 20), f"{peak / n_samples:.2f} bytes"
