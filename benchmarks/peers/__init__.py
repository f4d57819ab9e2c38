"""One module per contender of ``bench_peers.py``.

Each module defines a class with:

- ``name``: the row label's stem;
- ``version()``: imports the library and returns its version string, or
  raises (ImportError, OSError, ...) with the reason it cannot run here;
- ``variants(workload)``: a list of ``(label, options)`` rows to run on a
  training workload, or raises :class:`Unsupported` saying why not;
- ``prepare(workload, threads, **options)``: everything untimed (copying the
  initial weights in, converting data, building the network) and returns a
  run whose ``train()`` is what the clock measures, whose ``predict(X)``
  returns outputs for the common final loss, and whose ``note`` (optional)
  says how its math or conventions differ;
- optionally ``inference_variants(workload)`` and ``prepare_inference(...)``,
  whose run's ``predict(X)`` is what the clock measures.

A contender whose math cannot match a workload's says so in ``note``; the
runner prints that note beside its row.
"""

MODULES = (
    "cyprop_net",
    "lesson_numpy",
    "numpy_minibatch",
    "torch_cpu",
    "sklearn_mlp",
    "fann2_swig",
    "fann_cynn",
    "genann_cynn",
    "tinn_cynn",
    "kann_cynn",
)


class Unsupported(Exception):
    """The contender cannot do this workload's math; the message says why."""


class NotYetAvailable(Exception):
    """cyprop lacks a feature the workload needs (still being written)."""
