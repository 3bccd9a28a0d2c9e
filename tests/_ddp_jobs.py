"""Scripts that tests/test_distributed.py runs in subprocesses: Lightning's DDP launcher
runs a script's command line again for each further process, so the jobs cannot run
inside pytest. Each prints nothing the test reads; each process writes what it saw to
``OUT/rank{r}.json`` (outside the run's ``log_dir``) for the test to compare."""

from __future__ import annotations

import builtins
import io
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file
from torch import Tensor, nn
from torch.utils.data import TensorDataset

from rnnkit.train import TrainConfig, train
from rnnkit.train.distributed import ProcessTimeoutError, is_global_zero

LOOKBACK, FEATURES, HIDDEN = 5, 2, 6
TRAIN_SIZE, VAL_SIZE, BATCH = 48, 37, 8  # 37: the processes' parts of the last batch differ


class Net(nn.Module):
    """A GRU and a linear read-out: ``(N, LOOKBACK, FEATURES) -> (N,)``."""

    def __init__(self) -> None:
        super().__init__()
        self.gru = nn.GRU(FEATURES, HIDDEN, batch_first=True)
        self.head = nn.Linear(HIDDEN, 1)

    def forward(self, x: Tensor) -> Tensor:
        out, _ = self.gru(x)
        return self.head(out[:, -1]).squeeze(-1)


def data() -> tuple[TensorDataset, TensorDataset]:
    """Training ``(x, y, index)`` and validation ``(x, y)`` sets from a fixed seed."""
    generator = torch.Generator().manual_seed(7)
    x = torch.randn(TRAIN_SIZE + VAL_SIZE, LOOKBACK, FEATURES, generator=generator)
    y = x.sum(dim=(1, 2)) / 4 + 0.1 * torch.randn(len(x), generator=generator)
    train_set = TensorDataset(x[:TRAIN_SIZE], y[:TRAIN_SIZE], torch.arange(TRAIN_SIZE))
    return train_set, TensorDataset(x[TRAIN_SIZE:], y[TRAIN_SIZE:])


def mse(network: nn.Module, batch: tuple[Tensor, ...]) -> Tensor:
    return nn.functional.mse_loss(network(batch[0]), batch[1])


def _rank() -> int:
    return torch.distributed.get_rank() if torch.distributed.is_initialized() else 0


WRITES: list[str] = []  # what this process wrote under OUT/runs (see _audit_writes)


def _audit_writes(root: Path) -> None:
    """Record in WRITES every file this process opens for writing, or renames into place,
    under ``root``."""
    real_open, real_replace, real_rename = builtins.open, os.replace, os.rename
    prefix = str(root.resolve())

    def note(path: Any) -> None:
        if isinstance(path, (str, os.PathLike)) and str(Path(path).resolve()).startswith(prefix):
            WRITES.append(str(path))

    def opening(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if any(flag in mode for flag in "wax+"):
            note(file)
        return real_open(file, mode, *args, **kwargs)

    def replacing(source: Any, target: Any, *args: Any, **kwargs: Any) -> None:
        note(target)
        return real_replace(source, target, *args, **kwargs)

    def renaming(source: Any, target: Any, *args: Any, **kwargs: Any) -> None:
        note(target)
        return real_rename(source, target, *args, **kwargs)

    builtins.open = io.open = opening  # type: ignore[assignment]
    os.replace, os.rename = replacing, renaming  # type: ignore[assignment]


STEPS_PER_EPOCH = TRAIN_SIZE // 2 // BATCH  # on each of 2 processes


class RecordingLoss:
    """:func:`mse` that keeps the training indices each step drew, saves the weights and
    gradients of the first step (``step1``: read at the second) and, with ``kill_at``,
    ends the process abruptly at the first step of that epoch."""

    def __init__(self, out: Path, kill_at: int | None, step1: bool) -> None:
        self.out, self.kill_at, self.step1 = out, kill_at, step1
        self.batches: list[list[int]] = []

    def __call__(self, network: nn.Module, batch: tuple[Tensor, ...]) -> Tensor:
        if network.training:
            if self.kill_at is not None and len(self.batches) == self.kill_at * STEPS_PER_EPOCH:
                os._exit(3)  # a kill: no clean-up, no exception handlers
            if self.step1 and len(self.batches) == 1 and _rank() == 0:
                # the gradients are still those of step 1, reduced over the processes and
                # clipped: Lightning zeroes them after this training step
                grads = {f"grad.{n}": p.grad.clone() for n, p in network.named_parameters()}
                save_file({**network.state_dict(), **grads}, self.out / "step1.safetensors")
            self.batches.append(batch[2].tolist())
        return mse(network, batch)


def train_job(out: Path, mode: str) -> None:
    """``full``: 3 epochs on 2 processes; ``killed``: the same, killed at the start of
    epoch 2 (after epoch 1's checkpoint); ``resume``: resumes the killed run; ``nodes``:
    ``full`` on 2 machines of 1 process each."""
    log_dir = out / "runs" / ("killed" if mode in ("killed", "resume") else mode)
    first_write = len(WRITES)
    torch.manual_seed(0)
    network = Net()
    if mode == "full" and is_global_zero():
        save_file(dict(network.state_dict()), out / "initial.safetensors")
    # nodes: started by torchrun as 2 machines of 1 process each
    processes = {"devices": 1, "num_nodes": 2} if mode == "nodes" else {"devices": 2}
    config = TrainConfig(max_epochs=3, patience=10, batch_size=BATCH, learning_rate=1e-2,
                         **processes)  # fmt: skip
    loss = RecordingLoss(out, kill_at=2 if mode == "killed" else None, step1=mode == "full")
    history = train(network, loss, *data(), config, log_dir, progress=False,
                    resume=mode == "resume")  # fmt: skip
    rank = _rank()
    if rank == 0:
        save_file(dict(network.state_dict()), out / f"{mode}.safetensors")
    report = {"history": vars(history), "writes": WRITES[first_write:], "batches": loss.batches}
    (out / f"{mode}-rank{rank}.json").write_text(json.dumps(report))


SEQUENCE_LENGTH, STREAMS = 10, 6


def text() -> str:
    """A text with structure enough to learn a little from in two epochs."""
    words = ["alpha", "beta", "gamma", "delta", "epsilon"]
    generator = torch.Generator().manual_seed(3)
    picks = torch.randint(len(words), (400,), generator=generator).tolist()
    return " ".join(words[i] for i in picks)


def _fingerprint(network: nn.Module) -> list[float]:
    return [float(t.double().sum()) for t in network.state_dict().values()]


def tasks_job(out: Path) -> None:
    """The forecaster, the classifier and the generator (carrying state, so its training
    batches are split as validation's are) trained on 2 processes, and saved."""
    import rnnkit.tasks.forecaster as forecasting
    from rnnkit.data.series import TimeSeries
    from rnnkit.tasks import Forecaster, Generator, SequenceClassifier

    report: dict[str, Any] = {"baseline_calls": 0}
    first_write = len(WRITES)
    computing = forecasting.rolling_baselines

    def counted(*args: Any, **kwargs: Any) -> Any:  # the statsforecast fits this process ran
        report["baseline_calls"] += 1
        return computing(*args, **kwargs)

    forecasting.rolling_baselines = counted  # type: ignore[assignment]
    steps = np.arange(400, dtype=float)
    series = TimeSeries(np.sin(steps / 5)[:, None] + 2.0, ("y",))
    forecaster = Forecaster(
        lookback=12, horizon=4, season=1, hidden_size=8, blend=False, stride=1,
        training=TrainConfig(max_epochs=2, batch_size=32, devices=2),
    )  # fmt: skip
    forecaster.fit(series, val_size=40, log_dir=out / "runs" / "forecaster-logs", progress=False)
    forecaster.save(out / "runs" / "forecaster")
    fitted = forecaster._fitted
    report["forecaster choices"] = [fitted.transform, fitted.base, fitted.blend, fitted.partner,
                                    fitted.calibration, fitted.forms[None]]  # fmt: skip

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 60)
    sequences = rng.normal(size=(60, 8, 2)) + labels[:, None, None]
    classifier = SequenceClassifier(
        hidden_size=8, dropout=0.0, token_dropout=0.0,
        training=TrainConfig(max_epochs=2, batch_size=8, devices=2),
    )  # fmt: skip
    classifier.fit(sequences, labels.tolist(), progress=False)
    classifier.save(out / "runs" / "classifier")

    generator = Generator(
        hidden_size=16, embedding_size=8, sequence_length=SEQUENCE_LENGTH, carry_state=True,
        training=TrainConfig(max_epochs=2, batch_size=STREAMS, devices=2),
    )  # fmt: skip
    generator.fit(text(), progress=False)
    generator.save(out / "runs" / "generator")
    for name, model in (("forecaster", forecaster), ("classifier", classifier),
                        ("generator", generator)):  # fmt: skip
        report[name] = {"history": vars(model.history), "weights": _fingerprint(model.network)}
    report["writes"] = WRITES[first_write:]
    (out / f"tasks-rank{_rank()}.json").write_text(json.dumps(report))


ONDISK_ROWS, ONDISK_COLUMNS = 600, 3


def ondisk_series() -> np.ndarray:
    """The ``(600, 3)`` float32 series the on-disk job trains on."""
    return np.random.default_rng(5).normal(size=(ONDISK_ROWS, ONDISK_COLUMNS)).cumsum(axis=0)


def ondisk_job(out: Path) -> None:
    """A GRU trained on 2 processes on windows read lazily from a ``.npy`` file."""
    from rnnkit.data.ondisk import DiskWindows, fit_scaler

    path = out / "series.npy"
    scaler = fit_scaler(path, stop=500)
    windows = {"lookback": LOOKBACK, "horizon": 1, "num_targets": 1, "scaler": scaler}
    train_set = DiskWindows(path, stride=3, stop=500, **windows)
    val_set = DiskWindows(path, start=500 - LOOKBACK, **windows)
    torch.manual_seed(0)
    network = OnDiskNet()
    config = TrainConfig(max_epochs=2, batch_size=BATCH, devices=2)
    history = train(network, ondisk_loss, train_set, val_set, config, progress=False)
    if _rank() == 0:
        save_file(dict(network.state_dict()), out / "ondisk.safetensors")
    report = {"history": vars(history), "windows": [len(train_set), len(val_set)]}
    (out / f"ondisk-rank{_rank()}.json").write_text(json.dumps(report))


class OnDiskNet(Net):
    """:class:`Net` over the on-disk series' columns."""

    def __init__(self) -> None:
        nn.Module.__init__(self)
        self.gru = nn.GRU(ONDISK_COLUMNS, HIDDEN, batch_first=True)
        self.head = nn.Linear(HIDDEN, 1)


def ondisk_loss(network: nn.Module, batch: tuple[Tensor, Tensor]) -> Tensor:
    return nn.functional.mse_loss(network(batch[0]), batch[1][:, 0, 0])


STALL_TIMEOUT = 3.0  # seconds: the stalled job's ddp_timeout


def stalled_job(out: Path, how: str) -> None:
    """Two "machines" of one process each, started by the test as torchrun would start
    them, whose second process fails before training (``before``: the first waits for it
    to join) or stops answering in its second step (``hang``: the first waits at the
    gradients' all-reduce). The first reports its error and how long ``train`` took."""
    rank = int(os.environ["NODE_RANK"])
    if how == "before" and rank == 1:
        raise SystemExit("the second process fails before training")

    def stalling(network: nn.Module, batch: tuple[Tensor, ...]) -> Tensor:
        stalling.steps += network.training  # type: ignore[attr-defined]
        if how == "hang" and rank == 1 and stalling.steps == 2:  # type: ignore[attr-defined]
            time.sleep(600)  # the test kills this process
        return mse(network, batch)

    stalling.steps = 0  # type: ignore[attr-defined]
    config = TrainConfig(max_epochs=2, batch_size=BATCH, devices=1, num_nodes=2,
                         ddp_timeout=STALL_TIMEOUT)  # fmt: skip
    start = time.monotonic()
    try:
        train(Net(), stalling, *data(), config, progress=False)
        error = None
    except ProcessTimeoutError as caught:
        error = str(caught)
    report = {"seconds": time.monotonic() - start, "error": error}
    (out / f"stalled-{how}-rank{rank}.json").write_text(json.dumps(report))


if __name__ == "__main__":
    # killed: a run killed in epoch 2; main: its resumption, an uninterrupted run, the tasks
    # (one launch for all three: each launch starts two Pythons that import torch)
    where, job = Path(sys.argv[1]), sys.argv[2]
    _audit_writes(where / "runs")
    if job == "main" and is_global_zero():  # before the first fit starts the second process
        np.save(where / "series.npy", ondisk_series().astype(np.float32))
    if job in ("killed", "nodes"):
        train_job(where, job)
    elif job.startswith("stalled-"):
        stalled_job(where, job.removeprefix("stalled-"))
    else:
        train_job(where, "resume")
        train_job(where, "full")
        tasks_job(where)
        ondisk_job(where)
