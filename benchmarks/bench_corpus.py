"""A text corpus larger than memory trains the character LM from disk: peak RSS vs the file.

    python benchmarks/bench_corpus.py [--gigabytes 3] [--devices 1] [--carry-state] [--steps 200]

Writes (once) a UTF-8 text of about ``--gigabytes`` GB of random words a block at a time,
then trains :class:`rnnkit.tasks.Generator` on it with ``fit_file`` (LSTM 64, chunks of
100 characters, batch 64) for ``--steps`` training and validation batches, on
``--devices`` processes. ``fit_file`` encodes the file once into ``corpus-*.npy`` in the
log folder (timed: the first run only) and reads each chunk with one positioned read.
Each process reports its peak resident memory (VmHWM) at the end; the file's size over the
largest peak is the point.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from bench_ondisk import _peak_rss

WORDS = ("the", "of", "and", "to", "in", "is", "it", "that", "was", "for", "on", "are", "with",
         "as", "his", "they", "be", "at", "one", "have", "this")  # fmt: skip


def _write(path: Path, size: int) -> None:
    """Random words and line breaks, ``size`` bytes, written a block at a time."""
    rng, block = np.random.default_rng(0), 1 << 24
    staging = path.with_suffix(".partial")
    with staging.open("wb") as file:
        written = 0
        while written < size:
            picks = rng.integers(len(WORDS), size=block // 4)
            text = " ".join(WORDS[i] for i in picks).replace("the and", "the\nand")
            data = text.encode("utf-8")[: size - written]
            file.write(data)
            written += len(data)
    staging.rename(path)


def main() -> None:
    import lightning as L

    from rnnkit.tasks import Generator
    from rnnkit.train import TrainConfig
    from rnnkit.train.distributed import is_global_zero, make_strategy

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gigabytes", type=float, default=3.0)
    parser.add_argument("--devices", type=int, default=1)
    parser.add_argument("--carry-state", action="store_true")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--folder", type=Path, default=Path("/tmp/rnnkit-corpus"))
    args = parser.parse_args()
    args.folder.mkdir(parents=True, exist_ok=True)
    size = int(args.gigabytes * 1e9)
    path = args.folder / f"corpus-{size}.txt"
    if not path.exists() and is_global_zero():  # the further processes start after this
        started = time.perf_counter()
        _write(path, size)
        print(f"wrote {size / 1e9:.2f} GB in {time.perf_counter() - started:.0f} s", flush=True)
    model = Generator(hidden_size=64, embedding_size=16, sequence_length=100,
                      carry_state=args.carry_state,
                      training=TrainConfig(batch_size=64, devices=args.devices))  # fmt: skip
    trainer = L.Trainer(
        max_epochs=1, limit_train_batches=args.steps, limit_val_batches=args.steps,
        accelerator="cpu", devices=args.devices, strategy=make_strategy(args.devices, 1, "auto"),
        use_distributed_sampler=False, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False,
    )  # fmt: skip
    log_dir = args.folder / "logs"
    encoded = bool(list(log_dir.glob("corpus-*.npy")))
    started = time.perf_counter()
    history = model.fit_file(path, log_dir=log_dir, progress=False, trainer=trainer)
    seconds = time.perf_counter() - started
    rank = trainer.global_rank
    result = {
        "rank": rank, "file_gb": path.stat().st_size / 1e9, "peak_rss_gb": _peak_rss() / 1e9,
        "carry_state": args.carry_state, "encoded_before": encoded,
        "fit_file_seconds": seconds, "val_loss": history.val_loss,
    }  # fmt: skip
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
