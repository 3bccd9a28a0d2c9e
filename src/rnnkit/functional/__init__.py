"""Stateless maths on tensors: the RNN, LSTM and GRU steps (their cells' equations, run on
:data:`rnnkit.functional.ops.TORCH`), the time loop and scans, and the fused engine."""

from rnnkit.functional._numba_calls import engine_blas
from rnnkit.functional.cells import (
    NONLINEARITIES,
    gru_cell,
    gru_recurrence,
    lstm_cell,
    lstm_gates,
    lstm_recurrence,
    rnn_cell,
    rnn_recurrence,
)
from rnnkit.functional.minimal import (
    linear_scan,
    linear_scan_log,
    min_gru_scan,
    min_lstm_scan,
    positive_g,
)
from rnnkit.functional.scan import Projection, State, Step, in_chunks, scan

__all__ = [
    "NONLINEARITIES",
    "Projection",
    "State",
    "Step",
    "engine_blas",
    "gru_cell",
    "gru_recurrence",
    "in_chunks",
    "linear_scan",
    "linear_scan_log",
    "lstm_cell",
    "lstm_gates",
    "lstm_recurrence",
    "min_gru_scan",
    "min_lstm_scan",
    "positive_g",
    "rnn_cell",
    "rnn_recurrence",
    "scan",
]
