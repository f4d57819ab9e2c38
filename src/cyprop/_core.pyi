"""Type stub for the Cython core; see _core.pyx for what each kernel computes."""

from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

_Floats = NDArray[np.floating[Any]]
_Sizes = NDArray[np.intp]
_Codes = NDArray[np.intc]

ACTIVATIONS: Final[dict[str, int]]
LOSSES: Final[dict[str, int]]
OPTIMIZERS: Final[dict[str, int]]
OPTIMIZER_STATE_BUFFERS: Final[dict[int, int]]
STATUS: Final[dict[str, int]]
LEAKY_RELU_SLOPE: Final[float]
BLAS_MIN_PRODUCT: Final[int]

def use_blas(
    sgemm_address: int = 0,
    dgemm_address: int = 0,
    sgemv_address: int = 0,
    dgemv_address: int = 0,
    threads_address: int = 0,
) -> None: ...
def take_every_product(every: bool) -> None: ...
def kernel_takes_every_product() -> bool: ...
def full_width_avx512() -> bool: ...
def blas_in_use() -> tuple[int, int, int, int]: ...
def blas_threads_function() -> int: ...
def takes_avx512_product(
    m: int,
    n: int,
    k: int,
    itemsize: int,
    transpose_a: bool = False,
    alpha: float = 1.0,
    beta: float = 0.0,
    transpose_b: bool = False,
) -> bool: ...
def avx512_product_threads(m: int, n: int, k: int, itemsize: int) -> int: ...
def hands_blas_splittable_products(
    n_rows: int,
    sizes: _Sizes,
    itemsize: int,
    backward: bool = True,
    step_alpha: float = 1.0,
    step_beta: float = 0.0,
) -> bool: ...
def hidden_layer_scratch_size(
    optimizer: dict[str, Any],
    batch_rows: int,
    sizes: _Sizes,
    activations: _Codes,
    itemsize: int,
    gather: bool,
    weighted: bool,
) -> int: ...
def product_workers() -> int: ...
def blocks_moved() -> int: ...
def matrix_product(
    A: _Floats,
    B: _Floats,
    C: _Floats,
    alpha: float = 1.0,
    beta: float = 0.0,
    transpose_a: bool = False,
    transpose_b: bool = False,
) -> None: ...

def forward(
    X: _Floats, params: _Floats, sizes: _Sizes, activations: _Codes, A_out: _Floats
) -> None: ...
def loss_sum(
    X: _Floats,
    Y: _Floats,
    sample_weight: _Floats,
    params: _Floats,
    sizes: _Sizes,
    activations: _Codes,
    loss: int,
    A_work: _Floats,
    Z_work: _Floats,
) -> float: ...
def loss_gradient(
    X: _Floats,
    Y: _Floats,
    sample_weight: _Floats,
    params: _Floats,
    sizes: _Sizes,
    activations: _Codes,
    loss: int,
    scale: float,
    A_work: _Floats,
    delta_work: _Floats,
    grads_out: _Floats,
) -> float: ...
def all_finite_values(values: _Floats) -> bool: ...
def penalty(params: _Floats, sizes: _Sizes, weight_decay: float) -> float: ...
def add_penalty_gradient(
    params: _Floats, grads: _Floats, sizes: _Sizes, weight_decay: float
) -> None: ...
def optimizer_step(
    optimizer: dict[str, Any],
    params: _Floats,
    grads: _Floats,
    state: _Floats,
    learning_rate: float,
    step: int,
) -> None: ...
def tiny_sgd_step(
    X: _Floats,
    Y: _Floats,
    params: _Floats,
    sizes: _Sizes,
    activations: _Codes,
    loss: int,
    scale: float,
    learning_rate: float,
) -> float | None: ...
def tiny_step_sigmoid(Z: _Floats) -> bool: ...
def activation_backward(A: _Floats, delta: _Floats, activation: int) -> None: ...
def train_epochs(
    X: _Floats,
    Y: _Floats,
    sample_weight: _Floats,
    orders: _Sizes,
    batch_size: int,
    params: _Floats,
    sizes: _Sizes,
    activations: _Codes,
    loss: int,
    mean_reduction: bool,
    optimizer: dict[str, Any],
    learning_rates: NDArray[np.float64],
    first_step: int,
    state: _Floats,
    X_batch: _Floats,
    Y_batch: _Floats,
    weight_batch: _Floats,
    A_work: _Floats,
    delta_work: _Floats,
    grads: _Floats,
    params_backup: _Floats,
    losses_out: NDArray[np.float64],
    signal_interval: int,
    check_inputs: bool = ...,
    scratch: _Floats | None = ...,
    resume_known_good: bool = ...,
    signal_exceptions: list[BaseException] | None = ...,
) -> tuple[int, int, int, int]: ...
