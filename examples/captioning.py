"""Caption images of handwritten digits: "three digits: seven two nine".

Each 16x16 image is a 2x2 grid with 1-4 real 8x8 digits (scikit-learn's, split so test
handwriting is never seen in training) in random cells. A small CNN encodes the image, an
LSTM decoder starts from a state computed from it and, at every word, attends to the
positions of its feature map; captions are decoded greedily and with beam search, and
compared with logistic regression applied to each grid cell.

Run: python examples/captioning.py [--images 10000] [--epochs 15] [--hidden 128] [--lr 5e-3]
"""

from __future__ import annotations

import argparse

from rnnkit.data.digits import caption_grids, fit_digit_classifier, load_digit_split, read_grids
from rnnkit.tasks import Captioner
from rnnkit.train import TrainConfig


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10_000, help="training images")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--lr", type=float, default=5e-3, help="learning rate")
    parser.add_argument("--test-images", type=int, default=500)
    args = parser.parse_args(argv)

    train_digits, test_digits = load_digit_split()
    images, captions = caption_grids(train_digits, args.images, seed=1)
    test_images, test_captions = caption_grids(test_digits, args.test_images, seed=2)
    training = TrainConfig(max_epochs=args.epochs, patience=3, learning_rate=args.lr)
    model = Captioner(hidden_size=args.hidden, training=training)
    model.fit(images, captions, progress=False)

    greedy = model.evaluate(test_images, test_captions)
    beam = model.evaluate(test_images, test_captions, beam_size=4)
    guesses = read_grids(fit_digit_classifier(train_digits), test_images)
    baseline = sum(g == c for g, c in zip(guesses, test_captions, strict=True)) / len(guesses)
    print(f"greedy:      exact match {greedy['exact_match']:.3f}")
    print(f"beam search: exact match {beam['exact_match']:.3f}")
    print(f"logistic regression per cell: exact match {baseline:.3f}")
    shown = model.predict(test_images[:5], beam_size=4)
    for truth, said in zip(test_captions[:5], shown, strict=True):
        print(f"  {truth:<36} -> {said}")
    return {**greedy, "beam_exact_match": beam["exact_match"], "baseline_exact_match": baseline}


if __name__ == "__main__":
    main()
