"""Put rnnkit's drop-in layers and cells where code written for torch.nn looks them up.

``swap()`` replaces ``torch.nn.RNN/LSTM/GRU/RNNCell/LSTMCell/GRUCell`` (and the same names in
``torch.nn.modules.rnn``) with rnnkit's classes, in this process, so that other people's code
and tests run on rnnkit without an edit. As a pytest plugin (``-p swap`` with this folder on
``sys.path``) it swaps before any test module is imported.
"""

from __future__ import annotations

import torch

import rnnkit.nn

NAMES = ("RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell")


def swap() -> None:
    """Make ``torch.nn.<name>`` rnnkit's class for every name in :data:`NAMES`."""
    for name in NAMES:
        ours = getattr(rnnkit.nn, name)
        setattr(torch.nn, name, ours)
        setattr(torch.nn.modules, name, ours)
        setattr(torch.nn.modules.rnn, name, ours)


def pytest_configure(config: object) -> None:
    swap()
