"""Read strips of handwritten digits with CTC: no character positions, only the labels.

Strips of 3-8 real 8x8 digits (scikit-learn's, split so test handwriting is never seen in
training) sit side by side with random gaps, sometimes touching. A small CNN turns each
strip into columns of features, a bidirectional LSTM reads them, and CTC training sums over
every way of aligning the label to the columns. Greedy and prefix beam-search decoding are
printed beside a baseline that cuts the strip at blank columns and classifies each piece.

Run: python examples/ctc_digits.py [--strips 8000] [--epochs 12] [--hidden 96] [--lr 3e-3]
"""

from __future__ import annotations

import argparse

from rnnkit.data.digits import digit_strips, fit_digit_classifier, load_digit_split, read_strips
from rnnkit.tasks import CTCRecognizer
from rnnkit.tasks.ctc import character_error_rate
from rnnkit.train import TrainConfig


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strips", type=int, default=8000, help="training strips")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--hidden", type=int, default=96)
    parser.add_argument("--lr", type=float, default=3e-3, help="learning rate")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-digits", type=int, default=8)
    parser.add_argument("--test-strips", type=int, default=500)
    args = parser.parse_args(argv)

    train_digits, test_digits = load_digit_split()
    images, labels = digit_strips(train_digits, args.strips, seed=1, max_digits=args.max_digits)
    test_images, test_labels = digit_strips(
        test_digits, args.test_strips, seed=2, max_digits=args.max_digits
    )
    training = TrainConfig(
        max_epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.lr
    )
    model = CTCRecognizer(hidden_size=args.hidden, training=training)
    model.fit(images, labels, progress=False)

    greedy = model.evaluate(test_images, test_labels)
    beam = model.evaluate(test_images, test_labels, beam_size=8)
    guesses = read_strips(fit_digit_classifier(train_digits), test_images)
    baseline_cer = character_error_rate(test_labels, guesses)
    print(f"greedy:       sequence accuracy {greedy['sequence_accuracy']:.3f}, "
          f"CER {greedy['cer']:.4f}")  # fmt: skip
    print(f"beam search:  sequence accuracy {beam['sequence_accuracy']:.3f}, "
          f"CER {beam['cer']:.4f}")  # fmt: skip
    print(f"segmentation: CER {baseline_cer:.4f}")
    shown = model.predict(test_images[:5], beam_size=8)
    for truth, read in zip(test_labels[:5], shown, strict=True):
        print(f"  {truth:>8} -> {read}")
    return {**greedy, "beam_cer": beam["cer"], "baseline_cer": baseline_cer}


if __name__ == "__main__":
    main()
