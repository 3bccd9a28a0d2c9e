"""Training throughput (samples per second) on 1 and 2 processes (DDP, gloo).

    python benchmarks/bench_distributed.py [--repeats 3] [--epochs 3]

Runs each task (forecaster, sequence classifier, character LM) on one process with
torch's default threads (one per core), on one process with one thread, and on two
processes (``devices=2``; Lightning then gives each process cores / processes threads),
each in a fresh Python (Lightning's launcher runs this script again for the second
process), and times only the training batches of the epochs after the first (no
start-up, no validation): samples per second over all processes = samples of rank 0's
epoch x processes / the epoch's time. Prints one table of min-max ranges over the
repeats; with ``--json FILE`` also writes every measurement.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np

TASKS = ("forecaster", "classifier", "char-lm")
# (processes, threads per process; 0: torch's default)
SETUPS = ((1, 0), (1, 1), (2, 0))


class _Clock(L.Callback):
    """Seconds and samples of each epoch's training batches."""

    def __init__(self) -> None:
        self.epochs: list[tuple[float, int]] = []
        self.start, self.samples = 0.0, 0

    def on_train_batch_start(self, trainer: Any, module: Any, batch: Any, index: int) -> None:
        if index == 0:
            self.start, self.samples = time.perf_counter(), 0

    def on_train_batch_end(self, trainer: Any, module: Any, out: Any, batch: Any, i: int) -> None:
        self.samples += len(batch[0])
        if i == trainer.num_training_batches - 1:
            self.epochs.append((time.perf_counter() - self.start, self.samples))


def _trainer(devices: int, epochs: int, clock: _Clock) -> L.Trainer:
    from rnnkit.train.distributed import make_strategy

    return L.Trainer(
        max_epochs=epochs, accelerator="cpu", devices=devices, deterministic=True,
        strategy=make_strategy(devices, 1, "auto"), use_distributed_sampler=False,
        gradient_clip_val=1.0, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, callbacks=[clock],
    )  # fmt: skip


def _job(task: str, devices: int, threads: int, epochs: int, out: Path) -> None:
    """One measurement in this process (and the one Lightning starts)."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    from rnnkit.data.series import TimeSeries
    from rnnkit.tasks import Forecaster, Generator, SequenceClassifier
    from rnnkit.train import TrainConfig
    from rnnkit.train.distributed import is_global_zero

    clock = _Clock()
    trainer = _trainer(devices, epochs, clock)
    training = TrainConfig(max_epochs=epochs, patience=epochs, batch_size=64, devices=devices)
    rng = np.random.default_rng(0)
    if task == "forecaster":
        steps = np.arange(8_000, dtype=float)
        values = np.sin(steps / 24 * 2 * np.pi) + 0.1 * rng.normal(size=len(steps)) + 3
        # no transform, base or blend to choose: only the network's training is timed
        model = Forecaster(lookback=48, horizon=24, season=24, hidden_size=64, blend=False,
                           seasonal_base=False, transform="none", stride=2,
                           training=training)  # fmt: skip
        model.fit(TimeSeries(values[:, None], ("y",)), val_size=500, progress=False,
                  trainer=trainer)  # fmt: skip
    elif task == "classifier":
        labels = rng.integers(0, 4, 2000)
        sequences = rng.normal(size=(2000, 64, 3)) + 0.3 * labels[:, None, None]
        model = SequenceClassifier(hidden_size=64, training=training)
        model.fit(sequences, labels.tolist(), progress=False, trainer=trainer)
    else:
        words = ["the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog"]
        text = " ".join(words[i] for i in rng.integers(0, len(words), 30_000))
        model = Generator(hidden_size=128, sequence_length=100, training=training)
        model.fit(text, progress=False, trainer=trainer)
    if is_global_zero():
        timed = clock.epochs[1:]  # the first epoch warms up
        rate = [samples * devices / seconds for seconds, samples in timed]
        threads = torch.get_num_threads()
        result = {"task": task, "devices": devices, "threads": threads, "samples_per_s": rate}
        out.write_text(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--job", nargs=5, help=argparse.SUPPRESS)  # task devices threads ...
    args = parser.parse_args()
    if args.job:
        task, devices, threads, epochs, out = args.job
        _job(task, int(devices), int(threads), int(epochs), Path(out))
        return
    results: list[dict[str, Any]] = []
    scratch = Path(".bench_distributed.json")
    for repeat in range(args.repeats):
        for task in TASKS:
            for devices, threads in SETUPS:
                command = [sys.executable, __file__, "--job", task, str(devices), str(threads),
                           str(args.epochs), str(scratch)]  # fmt: skip
                subprocess.run(command, check=True, capture_output=True, text=True)
                result = json.loads(scratch.read_text())
                result["repeat"] = repeat
                results.append(result)
                rates = [round(r) for r in result["samples_per_s"]]
                print(task, devices, result["threads"], rates, flush=True)
    scratch.unlink(missing_ok=True)
    names = ["1 process, default threads", "1 process, 1 thread",
             "2 processes (Lightning: cores / 2 threads each)"]  # fmt: skip
    print(f"\n| task | {' | '.join(names)} |\n|---|" + "---|" * len(SETUPS))
    for task in TASKS:
        cells = []
        for index in range(len(SETUPS)):
            rates = [r for i, x in enumerate(results) if x["task"] == task
                     and i % len(SETUPS) == index for r in x["samples_per_s"]]  # fmt: skip
            cells.append(f"{min(rates):,.0f} - {max(rates):,.0f}")
        print(f"| {task} | {' | '.join(cells)} |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
