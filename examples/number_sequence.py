"""Seed exercise 1: an LSTM learns "0.1, 0.2, 0.3 -> 0.4", and what it does outside.

The model (``rnnkit.exercises.number_sequence``) trains with MSE on windows of three steps of
0.1 that start anywhere in [0, 0.5], so every target it has seen lies in [0.3, 0.8]. Inside
that range it predicts the next number well. Asked about 2.0, 2.1, 2.2 it does not
"know" to add 0.1: its tanh/sigmoid units saturate and it answers close to the largest
targets it was trained on. A network interpolates; it does not discover the rule.

Run: python examples/number_sequence.py [--epochs 300] [--seed 0]
"""

from __future__ import annotations

import argparse

from rnnkit.exercises import number_sequence

IN_RANGE = ((0.1, 0.2, 0.3), (0.5, 0.6, 0.7))
OUT_OF_RANGE = ((1.0, 1.1, 1.2), (2.0, 2.1, 2.2))
TRAINING_TARGET_MEAN = 0.55  # starts ~ U(0, 0.5), target = start + 0.3


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    result = number_sequence(IN_RANGE + OUT_OF_RANGE, epochs=args.epochs, seed=args.seed)
    print(f"trained {args.epochs} epochs, final training MSE {result.final_loss:.2e}")
    errors: dict[str, list[float]] = {"in": [], "out": [], "mean": []}
    for query, predicted in result.predictions.items():
        expected = round(query[-1] + 0.1, 10)
        error = abs(predicted - expected)
        inside = query in IN_RANGE
        errors["in" if inside else "out"].append(error)
        if inside:
            errors["mean"].append(abs(TRAINING_TARGET_MEAN - expected))
        where = "in range " if inside else "OUTSIDE  "
        shown = ", ".join(f"{v:.1f}" for v in query)
        print(f"{where} {shown} -> {predicted:.3f}  (expected {expected:.1f}, error {error:.3f})")
    results = {
        "in_range_error": max(errors["in"]),
        "out_of_range_error": max(errors["out"]),
        "mean_error": min(errors["mean"]),
    }
    print(
        f"largest error in range {results['in_range_error']:.3f}; outside "
        f"{results['out_of_range_error']:.3f}: the model interpolates, it does not extrapolate."
    )
    return results


if __name__ == "__main__":
    main()
