"""The compiled gate equations (:mod:`rnnkit.runtime.gates`) against the cells' own steps.

The engine's loops and the runtime's kernels both run these rows; here they run alone, in
float64 with the exact ``tanh``, from the products a caller would hand them, and must give the
new state of each cell's spec ``step`` on NumPy (an independent writing of the equations), and
the layer norms' moments NumPy computes."""

from __future__ import annotations

import numpy as np
import pytest

from rnnkit.cells import CELLS
from rnnkit.runtime import gates
from rnnkit.runtime._ops import NUMPY

numba = pytest.importorskip("numba")

BATCH, INPUTS, HIDDEN, EPS = 3, 5, 8, 1e-5
OFF = (False, np.zeros(1), np.zeros(1), 0.0, False)


@numba.njit(cache=False, error_model="numpy")
def _lstm(a, gh, c, c_new, tanh_c, h_new, peepholes, norms, moments):
    gates.lstm_rows(a, gh, c, c_new, tanh_c, h_new, peepholes, norms, moments, True)


@numba.njit(cache=False, error_model="numpy")
def _gru(x_t, g, h, a, h_new, b_hh, norms, moments):
    gates.gru_rows(x_t, g, h, a, h_new, b_hh, norms, moments, True)


def _cell(name: str, rng: np.random.Generator):
    """The spec, its ``p`` with every parameter random (LN gains and shifts too), an input
    and a state."""
    spec = CELLS[name]
    options = spec.check_options({}, HIDDEN)
    shapes = spec.parameters(INPUTS, HIDDEN, True, options)
    values = {n: rng.normal(scale=0.5, size=s.shape) for n, s in shapes.items() if s is not None}
    p = spec.namespace(values, INPUTS, HIDDEN, True, options)
    state = tuple(rng.normal(size=(BATCH, HIDDEN)) for _ in spec.state)
    return spec, p, rng.normal(size=(BATCH, INPUTS)), state


def _norm(gain: np.ndarray, shift: np.ndarray, wide: bool = False) -> tuple:
    return True, gain, shift, EPS, wide


def _moments(v: np.ndarray) -> np.ndarray:
    """Each row's mean and ``1/sqrt(var + eps)``, ``(N, 2)``."""
    return np.stack([v.mean(axis=1), 1 / np.sqrt(v.var(axis=1) + EPS)], axis=1)


@pytest.mark.parametrize("name", ["lstm", "peephole_lstm", "layernorm_lstm"])
def test_lstm_rows_step_as_the_cells_step(name: str) -> None:
    spec, p, x, (h, c) = _cell(name, np.random.default_rng(0))
    want_h, want_c = spec.step(NUMPY, p, spec.project(NUMPY, p, x), (h, c), None)
    norms, peepholes = (OFF, OFF, OFF), (np.zeros((1, 1)), False)
    if name == "layernorm_lstm":
        a, gh = x @ p.weight_ih.T, h @ p.weight_hh.T
        norms = (
            _norm(p.ln_weight_ih, p.ln_bias_ih),
            _norm(p.ln_weight_hh, p.ln_bias_hh),
            _norm(p.ln_weight_c, p.ln_bias_c),
        )
    else:
        a, gh = x @ p.weight_ih.T + p.bias_ih, h @ p.weight_hh.T + p.bias_hh
    if name == "peephole_lstm":
        peepholes = np.stack([p.weight_ci, p.weight_cf, p.weight_co]), True
    raw_a, raw_gh = a.copy(), gh.copy()
    c_new, tanh_c, h_new = (np.empty((BATCH, HIDDEN)) for _ in range(3))
    moments = np.zeros((3, BATCH, 2))
    _lstm(a, gh, c, c_new, tanh_c, h_new, peepholes, norms, moments)
    np.testing.assert_allclose(h_new, want_h, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(c_new, want_c, rtol=1e-12, atol=1e-13)
    if name == "layernorm_lstm":
        for k, rows in enumerate((raw_a, raw_gh, want_c)):
            np.testing.assert_allclose(moments[k], _moments(rows), rtol=1e-12, atol=1e-13)
    else:
        np.testing.assert_array_equal(moments, 0.0)  # written only where a norm is on


@pytest.mark.parametrize("name", ["gru", "layernorm_gru"])
def test_gru_rows_step_as_the_cells_step(name: str) -> None:
    spec, p, x, (h,) = _cell(name, np.random.default_rng(1))
    (want,) = spec.step(NUMPY, p, spec.project(NUMPY, p, x), (h,), None)
    if name == "layernorm_gru":
        x_t, g, b_hh = x @ p.weight_ih.T, h @ p.weight_hh.T, np.zeros(3 * HIDDEN)
        norms = _norm(p.ln_weight_ih, p.ln_bias_ih), _norm(p.ln_weight_hh, p.ln_bias_hh)
    else:
        x_t, g, b_hh = x @ p.weight_ih.T + p.bias_ih, h @ p.weight_hh.T, p.bias_hh
        norms = OFF, OFF
    raw_g = g.copy()
    a, h_new = np.empty((BATCH, 3 * HIDDEN)), np.empty((BATCH, HIDDEN))
    moments = np.zeros((BATCH, 2))
    _gru(x_t, g, h, a, h_new, b_hh, norms, moments)
    np.testing.assert_allclose(h_new, want, rtol=1e-12, atol=1e-13)
    want_moments = _moments(raw_g) if name == "layernorm_gru" else np.zeros((BATCH, 2))
    np.testing.assert_allclose(moments, want_moments, rtol=1e-12, atol=1e-13)


def test_a_wide_layer_norm_sums_its_mean_in_float64() -> None:
    """float32 rows far from 0: ``wide`` gives the float64 mean rounded once, where float32
    sums drift by several ulps; the normalised rows follow their mean."""

    @numba.njit(cache=False, error_model="numpy")
    def normalise(ln, x, out):
        return gates.normalise_row(ln, x, out, False)

    rng = np.random.default_rng(2)
    rows = (1000 + rng.normal(scale=1e-2, size=(64, 257))).astype(np.float32)
    ones, zeros = np.ones(257, np.float32), np.zeros(257, np.float32)
    errors = {}
    for wide in (False, True):
        ln, out = (True, ones, zeros, 1e-5, wide), np.empty(257, np.float32)
        means = np.array([normalise(ln, row, out)[0] for row in rows])
        exact = rows.astype(np.float64).mean(axis=1)
        errors[wide] = np.abs(means - exact).max()
        if wide:
            np.testing.assert_array_equal(means, exact.astype(np.float32))
    assert errors[True] < errors[False]
