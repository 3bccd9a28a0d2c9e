"""Date normalisation: an encoder-decoder with attention learns to read dates written in
twenty English and Korean formats ("Friday, 5 March 2021", "5 Mar 21", "2021년 3월 5일 금요일",
...) and write them in ISO 8601 ("2021-03-05").

The test days are never seen in training (in any format). The attention map shows the
alignment the model learned: the year digits look at the year, the month at the month name.

Run: python examples/date_normalisation.py [--train 10000] [--epochs 6] [--out attention.png]
"""

from __future__ import annotations

import argparse

from rnnkit.data.dates import date_pairs
from rnnkit.tasks.seq2seq import Seq2Seq
from rnnkit.train import TrainConfig
from rnnkit.viz import plot_attention


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=10000, help="training pairs")
    parser.add_argument("--test", type=int, default=2000, help="test pairs (unseen days)")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--attention", default="bahdanau")
    parser.add_argument("--beam", type=int, default=4)
    parser.add_argument("--out", default="attention.png")
    args = parser.parse_args(argv)

    train_pairs, test_pairs = date_pairs(train=args.train, test=args.test, seed=0)
    model = Seq2Seq(
        hidden_size=args.hidden, attention=args.attention,
        training=TrainConfig(max_epochs=args.epochs, batch_size=32, learning_rate=1e-2),
    )  # fmt: skip
    model.fit(*zip(*train_pairs, strict=True), progress=False)

    sources, targets = zip(*test_pairs, strict=True)
    greedy = model.evaluate(sources, targets)["exact_match"]
    beam = model.evaluate(sources, targets, beam_size=args.beam)["exact_match"]
    print(f"exact match on {len(test_pairs)} unseen days: greedy {greedy:.4f}, beam {beam:.4f}")
    for source in ("Friday, 5 March 2021", "the 29th of February 2024", "1987년 10월 3일 토요일"):
        print(f"{source!r:>30} -> {model.translate(source, beam_size=args.beam)}")

    figure = plot_attention(*model.attention("Friday, 5 March 2021"), args.out)
    print(f"attention map: {figure}")
    return {"greedy": greedy, "beam": beam}


if __name__ == "__main__":
    main()
