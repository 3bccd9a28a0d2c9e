"""``tanh`` and ``sigmoid`` as the compiled loops compute them: one approximation, in one place.

The compiled gate equations (:mod:`rnnkit.runtime.gates`), which the runtime's numba kernels
and the engine's loops both run, call these, and numba inlines them into the loops. ``tanh``
is a rational function (Eigen's float ``ptanh``) and ``sigmoid(x) = 1/2 + tanh(x/2)/2``: plain
arithmetic that the compiler vectorises along a row, where a call to the C library's ``tanh``
or ``exp`` per element costs several times more (pip's llvmlite links no vector maths
library). ``exact`` takes the C library's ``tanh`` instead, as the engine does in float64.
Constants go through :func:`like`, so float32 arguments get float32 arithmetic. The error
against the exact functions in float32, and the speed beside the Cephes ``exp`` the runtime
used before, are measured in benchmarks/README.md ("One activation approximation").

Torch-free, as the runtime must be. Without numba these are plain Python functions, which
nothing in the package calls then (each cell runs its NumPy step in the runtime). numba's
cache does not notice a change here in the loops that inline these functions: after editing
this module, delete ``src/rnnkit/runtime/__pycache__/*.nb[ic]`` and
``src/rnnkit/functional/__pycache__/*.nb[ic]``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

try:
    from numba import njit, types
    from numba.extending import overload
    from numba.np.numpy_support import as_dtype
except ImportError:  # the runtime runs without numba, on NumPy
    njit = None


def like(x: Any, value: float) -> Any:
    """``value`` as a scalar of the dtype of ``x`` (a scalar or an array). NumPy's rules make
    a Python float turn float32 arithmetic into float64: half as many lanes per vector
    instruction, plus the conversions."""
    return np.asarray(x).dtype.type(value)


def compiled(function: Callable) -> Callable:
    """``function`` compiled to be inlined into the loops that call it (as it is without
    numba); ``error_model="numpy"`` as in those loops, so a division cannot raise."""
    if njit is None:
        return function
    return njit(cache=True, error_model="numpy", inline="always")(function)


if njit is not None:

    @overload(like, inline="always")
    def _like_compiled(x, value):
        cast = as_dtype(x.dtype if isinstance(x, types.Array) else x).type
        return lambda x, value: cast(value)


@compiled
def tanh(x: float, exact: bool) -> float:
    """``tanh(x)``: the rational function (error a few float32 ulp), or ``math.tanh`` when
    ``exact``."""
    if exact:
        return math.tanh(x)
    bound = like(x, 7.90531110763549805)
    x = min(max(x, -bound), bound)
    x2 = x * x
    p = x2 * like(x, -2.76076847742355e-16) + like(x, 2.00018790482477e-13)
    p = x2 * p + like(x, -8.60467152213735e-11)
    p = x2 * p + like(x, 5.12229709037114e-08)
    p = x2 * p + like(x, 1.48572235717979e-05)
    p = x2 * p + like(x, 6.37261928875436e-04)
    p = x2 * p + like(x, 4.89352455891786e-03)
    q = x2 * like(x, 1.19825839466702e-06) + like(x, 1.18534705686654e-04)
    q = x2 * q + like(x, 2.26843463243900e-03)
    q = x2 * q + like(x, 4.89352518554385e-03)
    return x * p / q


@compiled
def sigmoid(x: float, exact: bool) -> float:
    """``1 / (1 + exp(-x))`` as ``1/2 + tanh(x/2)/2``, by :func:`tanh`."""
    half = like(x, 0.5)
    return half + half * tanh(half * x, exact)
