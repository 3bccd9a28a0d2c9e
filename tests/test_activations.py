"""The compiled ``tanh`` and ``sigmoid`` the runtime and the engine share
(:mod:`rnnkit.runtime.activations`): close to the exact functions over a dense grid, the
saturated ends included, in the dtype they are given."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rnnkit.runtime import activations, gates

numba = pytest.importorskip("numba")


@numba.njit(cache=False, error_model="numpy")
def _apply(x, exact, out_tanh, out_sigmoid):
    for k in range(x.shape[0]):
        out_tanh[k] = activations.tanh(x[k], exact)
        out_sigmoid[k] = activations.sigmoid(x[k], exact)


def _grid(dtype: type) -> np.ndarray:
    """Dense over [-20, 20], geometric out to +-1e4 and in to +-1e-30, and 0."""
    far = np.geomspace(1e-30, 1e4, 20_001)
    return np.concatenate([np.linspace(-20, 20, 400_001), far, -far, [0.0]]).astype(dtype)


def _exact(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``tanh`` (``math.tanh``, float64) and a sigmoid without cancellation at either end."""
    x = x.astype(np.float64)
    e = np.exp(-np.abs(x))
    return np.array([math.tanh(v) for v in x]), np.where(x >= 0, 1 / (1 + e), e / (1 + e))


# dtype, exact (the engine's float64), largest absolute error, largest tanh relative error:
# measured 3.2e-7, 2.3e-7 (sigmoid) and 3.2e-7 in float32; 2.6e-7, 1.3e-7, 2.6e-7 in float64
# without ``exact``; 0, 2.2e-16, 0 with it.
CASES = [
    (np.float32, False, 4e-7, 4e-7),
    (np.float64, False, 3e-7, 3e-7),
    (np.float64, True, 3e-16, 1e-16),
]


@pytest.mark.parametrize(("dtype", "exact", "atol", "tanh_rtol"), CASES)
def test_the_shared_activations_are_close_to_the_exact_ones(dtype, exact, atol, tanh_rtol) -> None:
    x = _grid(dtype)
    got_tanh, got_sigmoid = _apply_to(x, exact)
    want_tanh, want_sigmoid = _exact(x)
    assert np.abs(got_tanh - want_tanh).max() <= atol
    assert np.abs(got_sigmoid - want_sigmoid).max() <= atol
    tiny = np.abs(want_tanh) >= np.finfo(np.float32).tiny
    assert (np.abs(got_tanh - want_tanh)[tiny] / np.abs(want_tanh[tiny])).max() <= tanh_rtol
    np.testing.assert_array_equal(_apply_to(-x, exact)[0], -got_tanh)  # odd, as tanh is
    if dtype == np.float32:  # saturated: what float32 rounds tanh and sigmoid to out there
        assert got_tanh[x == x.max()][0] == 1 and got_tanh[x == x.min()][0] == -1
        assert got_sigmoid[x == x.max()][0] == 1 and got_sigmoid[x == x.min()][0] == 0


def _apply_to(x: np.ndarray, exact: bool) -> tuple[np.ndarray, np.ndarray]:
    out = np.empty_like(x), np.empty_like(x)
    _apply(x, exact, *out)
    return out


def test_float32_stays_float32() -> None:
    """Constants cast to the argument's dtype: float32 arithmetic for a float32 argument."""

    @numba.njit(cache=False, error_model="numpy")
    def both(x):
        return activations.tanh(x, False), activations.sigmoid(x, False)

    both(np.float32(0.3)), both(0.3)
    returns = {str(s.return_type) for s in both.nopython_signatures}
    assert returns == {"UniTuple(float32 x 2)", "UniTuple(float64 x 2)"}


def test_the_compiled_rows_activate_with_the_shared_functions() -> None:
    """``gates.activate_row``, which the runtime's kernels and the engine's loops both run, is
    the shared ``tanh`` and ``sigmoid`` to the bit, torch's ``relu`` (NaN kept) and a softmax
    close to NumPy's."""
    activate = numba.njit(cache=False, error_model="numpy")(gates.activate_row.py_func)
    v = np.random.default_rng(0).normal(scale=4.0, size=40).astype(np.float32)
    v[3] = np.nan
    tanh, sigmoid = _apply_to(v, False)
    results = {}
    for kind, name in enumerate(gates.ACTIVATIONS):
        results[name] = v.copy()
        activate(results[name], kind, False)
    np.testing.assert_array_equal(results["identity"], v)
    np.testing.assert_array_equal(results["tanh"], tanh)
    np.testing.assert_array_equal(results["sigmoid"], sigmoid)
    np.testing.assert_array_equal(results["relu"], np.where(v > 0, v, 0) + 0 * v)
    finite = v[np.isfinite(v)]
    results["softmax"] = finite.copy()
    activate(results["softmax"], gates.ACTIVATIONS.index("softmax"), False)
    want = np.exp(finite - finite.max()) / np.exp(finite - finite.max()).sum()
    np.testing.assert_allclose(results["softmax"], want, rtol=1e-6)
