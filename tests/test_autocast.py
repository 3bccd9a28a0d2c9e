"""Every layer under ``torch.autocast`` (bfloat16 on CPU), as torch.nn's layers work there.

torch.nn's RNN/LSTM/GRU run torch's kernels under autocast and may return bfloat16 states,
which the next call takes back. rnnkit's layers that reach the same kernels give the same
results; those that run rnnkit's own loops compute in their parameters' dtype, exactly as
without autocast.
"""

from __future__ import annotations

import pytest
import torch

from rnnkit.nn import LAYERS, make_layer

TORCH = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}
CASES = [(name, {}) for name in sorted(LAYERS)] + [
    ("lstm", {"zoneout": 0.1}),
    ("gru", {"num_layers": 2, "bidirectional": True}),
    ("layernorm_lstm", {"num_layers": 2, "bidirectional": True}),
]


def _twice(layer: torch.nn.Module, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
    """Run ``x1``, then ``x2`` from the state it left, under autocast: the output of ``x2``."""
    with torch.autocast("cpu", dtype=torch.bfloat16):
        _, state = layer(x1)
        output, _ = layer(x2, state)
    return output


@pytest.mark.parametrize(("name", "options"), CASES, ids=lambda v: str(v))
def test_layer_under_autocast_feeds_its_state_back_and_trains(
    name: str, options: dict, request: pytest.FixtureRequest
) -> None:
    torch.manual_seed(0)
    layer = make_layer(name, 6, 10, batch_first=True, **options).eval()
    x1, x2 = torch.randn(3, 7, 6), torch.randn(3, 5, 6)
    if name in TORCH and not options.get("zoneout"):  # torch's kernel: as torch.nn's layer
        twin = TORCH[name](6, 10, batch_first=True, **options).eval()
        twin.load_state_dict(layer.state_dict())
        if name == "lstm":
            request.getfixturevalue("bf16_lstm")
        expected = _twice(twin, x1, x2)
    output = _twice(layer, x1, x2)
    output.float().square().mean().backward()
    assert all(p.grad is not None and p.grad.isfinite().all() for p in layer.parameters())
    if name in TORCH and not options.get("zoneout"):
        assert output.dtype == expected.dtype
        torch.testing.assert_close(output, expected, rtol=0, atol=0)
    else:  # rnnkit's own loop: float32 arithmetic, the same as without autocast
        expected, _ = layer(x2, layer(x1)[1])
        assert output.dtype == torch.float32
        torch.testing.assert_close(output, expected, rtol=0, atol=0)
