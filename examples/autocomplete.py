"""Seed exercise 2: complete "wor" -> "d" with one-hot characters, a 2-layer LSTM and softmax
cross-entropy, written out as a plain PyTorch loop.

Ten four-letter words are the data set (the seed lecture's list). Each word's first three
letters, one-hot over the 26 letters, are the input ``(N, L=3, 26)``; its last letter is the
target class. A stacked LSTM reads the letters, a linear layer maps its last output to 26
logits and ``cross_entropy`` (softmax + negative log-likelihood) is the loss.

"wor" -> "d" and "woo" -> "d", "coo" -> "l" and "col" -> "d": the last letter depends on the
whole prefix, so the model must read all three letters. Always guessing the most common last
letter ("d", 5 of the 10 words) gets half of them right.

For completion on real text (a character language model, any prefix, any length) see
``rnnkit.tasks.Generator.complete``.

Run: python examples/autocomplete.py [--steps 100] [--seed 0]
"""

from __future__ import annotations

import argparse
import math
import string
from collections import Counter

import torch
from torch import Tensor, nn

from rnnkit.nn import LSTM

WORDS = ["word", "wood", "deep", "dive", "cold", "cool", "load", "love", "kiss", "kind"]
ALPHABET = string.ascii_lowercase  # class k is the letter ALPHABET[k]


class Autocomplete(nn.Module):
    """One-hot prefixes ``(N, L, 26)`` -> logits of the next letter ``(N, 26)``."""

    def __init__(self, hidden_size: int = 128, num_layers: int = 2) -> None:
        super().__init__()
        self.lstm = LSTM(len(ALPHABET), hidden_size, num_layers=num_layers, batch_first=True)
        self.head = nn.Linear(hidden_size, len(ALPHABET))

    def forward(self, x: Tensor) -> Tensor:
        output, _ = self.lstm(x)  # (N, L, H)
        return self.head(output[:, -1])  # (N, 26): from the output after the last letter


def one_hot(prefixes: list[str]) -> Tensor:
    """Equal-length lower-case prefixes -> ``(N, L, 26)`` one-hot float32."""
    ids = torch.tensor([[ALPHABET.index(c) for c in p] for p in prefixes])
    return nn.functional.one_hot(ids, len(ALPHABET)).float()


def main(argv: list[str] | None = None) -> dict[str, float | str]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100, help="Adam steps (full batch)")
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    torch.manual_seed(args.seed)
    x = one_hot([w[:-1] for w in WORDS])  # (10, 3, 26)
    y = torch.tensor([ALPHABET.index(w[-1]) for w in WORDS])  # (10,)
    model = Autocomplete(args.hidden)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    for step in range(args.steps):
        optimiser.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimiser.step()
        if step == 0 or (step + 1) % max(args.steps // 4, 1) == 0:
            print(f"step {step + 1:4d}  cross-entropy {loss.item():.4f}")

    model.eval()
    with torch.no_grad():
        probabilities = torch.softmax(model(x), dim=-1)  # (10, 26)
    predicted = [ALPHABET[k] for k in probabilities.argmax(-1).tolist()]
    for word, letter, p in zip(
        WORDS, predicted, probabilities.max(-1).values.tolist(), strict=True
    ):
        mark = "ok" if letter == word[-1] else f"WRONG (expected {word[-1]})"
        print(f"{word[:-1]} -> {letter}  p={p:.3f}  {mark}")
    accuracy = sum(p == w[-1] for p, w in zip(predicted, WORDS, strict=True)) / len(WORDS)
    majority = Counter(w[-1] for w in WORDS).most_common(1)[0][1] / len(WORDS)
    print(
        f"accuracy {accuracy:.0%} (always guessing the most common last letter: {majority:.0%}); "
        f"cross-entropy {loss.item():.4f} (uniform guess: ln 26 = {math.log(26):.2f})"
    )
    return {"accuracy": accuracy, "majority": majority, "loss": loss.item(),
            "wor": predicted[0]}  # fmt: skip


if __name__ == "__main__":
    main()
