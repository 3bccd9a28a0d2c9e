"""Stateless maths shared by the layers, the runtime's reference path and the tests."""

from rnnkit.functional.cells import (
    NONLINEARITIES,
    gru_cell,
    gru_recurrence,
    lstm_cell,
    lstm_recurrence,
    rnn_cell,
    rnn_recurrence,
)
from rnnkit.functional.scan import Projection, State, Step, scan

__all__ = [
    "NONLINEARITIES",
    "Projection",
    "State",
    "Step",
    "gru_cell",
    "gru_recurrence",
    "lstm_cell",
    "lstm_recurrence",
    "rnn_cell",
    "rnn_recurrence",
    "scan",
]
