"""Where a small inference call's time goes: the engine's fixed cost, layer by layer.

At small shapes (B=1-4, T up to a few dozen) the extended layers' time is mostly fixed cost,
not the loop. This times a call at each depth of the stack, in bursts of calls interleaved in
one process (1 thread, no gradients, medians of the bursts' means), beside ``torch.nn.LSTM``
with and without ``Module.__call__``:

* ``layer()``: the whole call, ``Module.__call__`` included;
* ``forward``: ``RecurrentBase._forward``, the call without ``Module.__call__`` (the layer's
  checks and initial state below it);
* ``engine run``: ``rnnkit.nn._engine.run``, the stack (the recurrences' set-up below it);
* ``inference``: ``rnnkit.functional.fused.lstm_inference`` / ``gru_inference`` as the
  engine called it (buffers, arrays and the loop below it);
* ``numba loop``: the compiled loop alone, with the arguments it was given.

Usage::

    python benchmarks/call_cost.py [--shape 1,1,4,64] [--rounds 15]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

import rnnkit.nn as nn
from rnnkit.functional import _fused_numba
from rnnkit.nn import _base, _engine

#: Calls timed back to back: a call right after another kind of call (another module, another
#: depth) costs tens of microseconds more, which single interleaved calls would charge to
#: whichever depth comes first.
BURST = 100

LAYERS: dict[str, Callable[[int, int], torch.nn.Module]] = {
    "LSTM zoneout": lambda i, h: nn.LSTM(i, h, zoneout=0.1),
    "PeepholeLSTM": nn.PeepholeLSTM,
    "LayerNormLSTM": nn.LayerNormLSTM,
    "LayerNormGRU": nn.LayerNormGRU,
}


def captured(layer: torch.nn.Module, x: torch.Tensor) -> dict[str, tuple]:
    """The arguments the engine passed to the inference function and to the numba loop in
    one call of ``layer`` on ``x``."""
    found: dict[str, tuple] = {}
    patches = [(_engine, "lstm_inference"), (_engine, "gru_inference")]
    patches += [(_fused_numba, "lstm_forward"), (_fused_numba, "gru_forward")]
    originals = [getattr(module, name) for module, name in patches]

    def spy(name: str, function: Callable) -> Callable:
        def record(*args, **kwargs):
            found[name] = (function, args, kwargs)
            return function(*args, **kwargs)

        return record

    try:
        for (module, name), function in zip(patches, originals, strict=True):
            setattr(module, name, spy(name, function))
        layer(x)
    finally:
        for (module, name), function in zip(patches, originals, strict=True):
            setattr(module, name, function)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", default="1,1,4,64", help="B,T,I,H (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    batch, steps, inputs, hidden = (int(v) for v in args.shape.split(","))
    torch.set_num_threads(1)
    torch.manual_seed(0)
    x = torch.randn(steps, batch, inputs)
    lstm = torch.nn.LSTM(inputs, hidden).eval()
    forward = _base.RecurrentBase._forward  # below Module.__call__
    print(f"B={batch} T={steps} I={inputs} H={hidden}, 1 thread, us a call, {args.rounds} rounds")
    with torch.no_grad():
        for name, make in LAYERS.items():
            layer = make(inputs, hidden).eval()
            state = layer._initial_state(None, batch, next(layer.parameters()), True)
            found = captured(layer, x)
            infer = next(found[k] for k in ("lstm_inference", "gru_inference") if k in found)
            loop = next(found[k] for k in ("lstm_forward", "gru_forward") if k in found)
            calls = {
                "nn.LSTM()": lambda: lstm(x),
                "nn.LSTM.forward": lambda: lstm.forward(x),
                "layer()": lambda layer=layer: layer(x),
                "forward": lambda layer=layer: forward(layer, x),
                "engine run": lambda layer=layer, state=state: _engine.run(layer, x, state, None),
                "inference": lambda infer=infer: infer[0](*infer[1], **infer[2]),
                "numba loop": lambda loop=loop: loop[0](*loop[1]),
            }
            times: dict[str, list[float]] = {label: [] for label in calls}
            for call in calls.values():
                for _ in range(30):
                    call()
            for _ in range(args.rounds):
                for label, call in calls.items():
                    start = time.perf_counter()
                    for _ in range(BURST):
                        call()
                    times[label].append((time.perf_counter() - start) / BURST)
            median = {label: 1e6 * statistics.median(t) for label, t in times.items()}
            print(f"\n{name}: " + ", ".join(f"{k} {v:.1f}" for k, v in median.items()))
            print(
                f"  pieces: Module.__call__ {median['layer()'] - median['forward']:.1f}"
                f", checks and state {median['forward'] - median['engine run']:.1f}"
                f", engine set-up {median['engine run'] - median['inference']:.1f}"
                f", buffers and arrays {median['inference'] - median['numba loop']:.1f}"
                f", loop {median['numba loop']:.1f}"
                f"; nn.LSTM's Module.__call__ "
                f"{median['nn.LSTM()'] - median['nn.LSTM.forward']:.1f}"
            )


if __name__ == "__main__":
    main()
