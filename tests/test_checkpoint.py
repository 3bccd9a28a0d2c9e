"""Training checkpoints: pickle-free files, exact resume after an interruption, clear errors."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from lightning.pytorch.callbacks import Callback
from safetensors.torch import save_file
from torch import nn
from torch.utils.data import TensorDataset
from typer.testing import CliRunner

from rnnkit.cli import app
from rnnkit.train import ModelFileError, TrainConfig, train
from rnnkit.train import loop as training_loop
from rnnkit.train.checkpoint import load_checkpoint, save_checkpoint
from rnnkit.train.loop import CHECKPOINT

CONFIG = TrainConfig(max_epochs=6, patience=10, batch_size=32)


def data() -> tuple[TensorDataset, TensorDataset]:
    x = torch.randn(200, 10, 3, generator=torch.Generator().manual_seed(0))
    y = x.sum((1, 2))[:, None]
    return TensorDataset(x[:160], y[:160]), TensorDataset(x[160:], y[160:])


def network(hidden: int = 16) -> nn.Module:
    torch.manual_seed(1)
    # Dropout makes the result depend on the random generator, so an exact resume must
    # restore it too.
    return nn.Sequential(
        nn.Flatten(), nn.Linear(30, hidden), nn.Dropout(0.3), nn.ReLU(), nn.Linear(hidden, 1)
    )


def mse(net: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    return nn.functional.mse_loss(net(batch[0]), batch[1])


@pytest.fixture
def interrupt_at_epoch(monkeypatch: pytest.MonkeyPatch):
    """Raise KeyboardInterrupt (as Ctrl-C does) once, when a training run starts the given
    epoch."""

    def arm(epoch: int) -> None:
        fired = []

        def stop(self, trainer, module) -> None:
            if trainer.current_epoch == epoch and not fired:
                fired.append(epoch)
                raise KeyboardInterrupt

        monkeypatch.setattr(training_loop._BestWeights, "on_train_epoch_start", stop, raising=False)

    yield arm


def test_tree_round_trip_keeps_types_dtypes_and_values(tmp_path: Path) -> None:
    tree = {
        "state": {0: {"step": torch.tensor(3.0), "m": torch.randn(2, 3)}, 1: {}},
        "groups": [{"betas": (0.9, 0.999), "params": [0, 1], "fused": None, "lr": 1e-3}],
        "flags": torch.tensor([True, False]),
        "ids": torch.arange(4),
        "rng": torch.get_rng_state(),
        "best": math.inf,
        "name": "val_loss",
        "__tensor__": "a key that looks like a tag",
    }
    save_checkpoint(tree, tmp_path / "c.safetensors")
    loaded = load_checkpoint(tmp_path / "c.safetensors")
    assert loaded.keys() == tree.keys()
    assert set(loaded["state"]) == {0, 1}
    assert torch.equal(loaded["state"][0]["m"], tree["state"][0]["m"])
    assert loaded["state"][0]["step"].shape == ()
    assert loaded["groups"][0]["betas"] == (0.9, 0.999)
    assert loaded["groups"][0]["fused"] is None
    assert loaded["flags"].dtype == torch.bool and torch.equal(loaded["ids"], tree["ids"])
    assert torch.equal(loaded["rng"], tree["rng"]) and loaded["rng"].dtype == torch.uint8
    assert loaded["best"] == math.inf
    assert loaded["__tensor__"] == "a key that looks like a tag"


def test_objects_that_would_need_pickle_are_refused(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match=r"cannot store a set at '/callbacks/x'"):
        save_checkpoint({"callbacks": {"x": {1, 2}}}, tmp_path / "c.safetensors")
    assert not any(tmp_path.iterdir())  # nothing half-written is left behind


@pytest.mark.parametrize("content", ["truncated", "foreign", "text"])
def test_bad_checkpoint_files_raise_clear_errors(tmp_path: Path, content: str) -> None:
    path = tmp_path / "c.safetensors"
    if content == "foreign":
        save_file({"w": torch.zeros(2)}, path)
    else:
        save_checkpoint({"w": torch.zeros(100)}, path)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2] if content == "truncated" else b"hello")
    with pytest.raises(ModelFileError, match=r"checkpoint: .*c\.safetensors"):
        load_checkpoint(path)


# a constant learning rate; a warmup and a cosine schedule; weights averaged
@pytest.mark.parametrize(
    "options", [{}, {"final_learning_rate": 1e-4, "warmup_steps": 7}, {"ema_decay": 0.7}]
)
def test_resumed_run_equals_an_uninterrupted_one(
    tmp_path: Path, interrupt_at_epoch, options: dict
) -> None:
    config = TrainConfig(max_epochs=6, patience=10, batch_size=32, **options)
    whole = network()
    expected = train(whole, mse, *data(), config, tmp_path / "whole", progress=False)

    handler = signal.getsignal(signal.SIGINT)
    interrupt_at_epoch(3)
    with pytest.raises(KeyboardInterrupt):
        train(network(), mse, *data(), config, tmp_path / "cut", progress=False)
    assert signal.getsignal(signal.SIGINT) == handler  # Lightning's SIG_IGN is undone
    assert load_checkpoint(tmp_path / "cut" / CHECKPOINT)["epoch"] == 2  # epochs 0..2 done
    # A kill can land after a checkpoint but before the epoch's train row is written, after
    # the next epoch's validation row is written but before its checkpoint, or mid-row.
    log = tmp_path / "cut" / "metrics.csv"
    rows = log.read_text().splitlines()
    assert rows[-1].startswith("2,") and rows[-1].endswith(",")  # epoch 2's train row
    log.write_text("\n".join([*rows[:-1], "3,99,,1.5", "3,1"]))

    resumed = network()
    history = train(resumed, mse, *data(), config, tmp_path / "cut", progress=False, resume=True)

    assert history == expected
    for name, value in whole.state_dict().items():
        assert torch.equal(resumed.state_dict()[name], value), name
    assert log.read_text() == (tmp_path / "whole" / "metrics.csv").read_text()


def test_resume_without_a_checkpoint_or_with_another_model_is_refused(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"resume: no checkpoint in .*empty"):
        train(network(), mse, *data(), CONFIG, tmp_path / "empty", progress=False, resume=True)
    with pytest.raises(FileNotFoundError, match="resume: no checkpoint without a log_dir"):
        train(network(), mse, *data(), CONFIG, None, progress=False, resume=True)
    short = TrainConfig(max_epochs=1, batch_size=32)
    train(network(), mse, *data(), short, tmp_path / "run", progress=False)
    with pytest.raises(ModelFileError, match=r"different model \(e\.g\. weight '1\.bias'"):
        train(network(8), mse, *data(), CONFIG, tmp_path / "run", progress=False, resume=True)


def text_file(tmp_path: Path) -> Path:
    words = ["the", "cat", "sat", "on", "a", "mat", "and", "dog", "ran"]
    generator = torch.Generator().manual_seed(0)
    picks = torch.randint(len(words), (1500,), generator=generator).tolist()
    path = tmp_path / "words.txt"
    path.write_text(" ".join(words[i] for i in picks), encoding="utf-8")
    return path


def generate_args(path: Path, out: Path, epochs: int) -> list[str]:
    return ["generate", "--data", str(path), "--out", str(out), "--epochs", str(epochs),
            "--hidden-size", "16", "--sequence-length", "20", "--batch-size", "32",
            "--length", "20"]  # fmt: skip


def test_cli_interrupt_then_resume_saves_the_same_model(tmp_path: Path, interrupt_at_epoch) -> None:
    path, runner = text_file(tmp_path), CliRunner()
    whole = runner.invoke(app, generate_args(path, tmp_path / "whole", 3))
    assert whole.exit_code == 0, whole.output

    interrupt_at_epoch(1)
    cut = runner.invoke(app, generate_args(path, tmp_path / "cut", 3))
    assert cut.exit_code == 130
    assert "--resume" in cut.stderr and "Traceback" not in cut.output
    assert not (tmp_path / "cut" / "model").exists()

    resumed = runner.invoke(app, [*generate_args(path, tmp_path / "cut", 3), "--resume"])
    assert resumed.exit_code == 0, resumed.output
    weights = "model/weights.safetensors"
    assert (tmp_path / "cut" / weights).read_bytes() == (tmp_path / "whole" / weights).read_bytes()

    wrong = runner.invoke(app, [*generate_args(path, tmp_path / "none", 3), "--resume"])
    assert wrong.exit_code == 2 and "resume: no checkpoint" in wrong.stderr


def test_a_killed_run_leaves_a_loadable_checkpoint_to_resume(tmp_path: Path) -> None:
    path, out = text_file(tmp_path), tmp_path / "run"
    command = [sys.executable, "-m", "rnnkit.cli", *generate_args(path, out, 1000)]
    checkpoint = out / "logs" / CHECKPOINT
    with subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) as process:
        deadline = time.monotonic() + 120
        while not checkpoint.exists() and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.05)
        os.kill(process.pid, signal.SIGKILL)
        errors = process.stderr.read().decode()
    assert checkpoint.exists(), errors
    done = load_checkpoint(checkpoint)["epoch"] + 1

    resumed = CliRunner().invoke(app, [*generate_args(path, out, done + 1), "--resume"])
    assert resumed.exit_code == 0, resumed.output
    assert (out / "model" / "weights.safetensors").is_file()
    logged = (out / "logs" / "metrics.csv").read_text().splitlines()[1:]
    kinds = [(int(row.split(",")[0]), row.endswith(",")) for row in logged]
    assert sorted(kinds) == [(epoch, train) for epoch in range(done + 1) for train in (False, True)]


# (warmup steps, final learning rate): a cosine; a warmup, then constant; both
@pytest.mark.parametrize("warmup, final", [(0, 3e-4), (4, None), (4, 3e-4)])
def test_learning_rate_schedule_follows_its_closed_form(warmup: int, final: float | None) -> None:
    config = TrainConfig(max_epochs=3, batch_size=32, learning_rate=3e-3,
                         final_learning_rate=final, warmup_steps=warmup)  # fmt: skip
    seen: list[float] = []

    class Record(Callback):
        def on_train_batch_start(self, trainer, module, batch, index) -> None:
            seen.append(trainer.optimizers[0].param_groups[0]["lr"])

    trainer = L.Trainer(max_epochs=3, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False,
                        callbacks=[Record()])  # fmt: skip
    train(network(), mse, *data(), config, progress=False, trainer=trainer)
    total = 3 * 5  # 160 examples in batches of 32, three epochs
    ramp = [3e-3 * (t + 1) / warmup for t in range(warmup)]
    if final is None:
        rest = [3e-3] * (total - warmup)
    else:
        span = total - warmup
        rest = [final + (3e-3 - final) * (1 + math.cos(math.pi * t / span)) / 2
                for t in range(span)]  # fmt: skip
    np.testing.assert_allclose(seen, ramp + rest, rtol=1e-9)
    assert seen[warmup] == 3e-3  # the ramp ends at the full rate


def test_schedule_options_are_checked() -> None:
    with pytest.raises(ValueError, match=r"learning_rate: expected a finite float > 0, got 0"):
        TrainConfig(learning_rate=0)
    with pytest.raises(ValueError, match=r"final_learning_rate: expected None or a value in"):
        TrainConfig(learning_rate=1e-3, final_learning_rate=1e-2)
    with pytest.raises(ValueError, match=r"warmup_steps: expected an int >= 0, got -1"):
        TrainConfig(warmup_steps=-1)
    with pytest.raises(TypeError, match=r"warmup_steps: expected an int, got float 2\.5"):
        TrainConfig(warmup_steps=2.5)


def test_weight_decay_is_decoupled_from_the_gradient() -> None:
    """AdamW: a weight whose gradient is zero only shrinks, by learning_rate * weight_decay
    of itself a step (Adam's L2 penalty would take adaptive steps of ~learning_rate)."""
    rate, decay, steps_per_epoch = 1e-2, 0.5, 5  # 160 examples in batches of 32
    config = TrainConfig(max_epochs=3, patience=10, batch_size=32, learning_rate=rate,
                         weight_decay=decay)  # fmt: skip
    net = network()
    net.idle = nn.Parameter(torch.full((4,), 2.0))

    def loss(network: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        return mse(network, batch) + 0 * network.idle.sum()

    history = train(net, loss, *data(), config, progress=False)
    steps = (history.best_epoch + 1) * steps_per_epoch  # the restored epoch's last step
    torch.testing.assert_close(net.idle.detach(), torch.full((4,), 2 * (1 - rate * decay) ** steps))
    with pytest.raises(ValueError, match=r"weight_decay: expected a value >= 0, got -0.1"):
        TrainConfig(weight_decay=-0.1)


def test_ema_keeps_the_moving_average_of_the_trained_weights() -> None:
    decay, steps_per_epoch = 0.7, 5  # 160 examples in batches of 32
    config = TrainConfig(max_epochs=3, patience=10, batch_size=32, ema_decay=decay)
    trained: list[dict[str, torch.Tensor]] = []

    class Record(Callback):
        def on_train_batch_end(self, trainer, module, *args) -> None:
            trained.append({k: v.clone() for k, v in module.network.state_dict().items()})

    trainer = L.Trainer(max_epochs=3, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False,
                        callbacks=[Record()])  # fmt: skip
    net = network()
    history = train(net, mse, *data(), config, progress=False, trainer=trainer)

    last = (history.best_epoch + 1) * steps_per_epoch  # the restored epoch's last step
    average = trained[0]
    for weights in trained[1:last]:
        average = {k: decay * average[k] + (1 - decay) * weights[k] for k in average}
    for name, value in net.state_dict().items():
        torch.testing.assert_close(value, average[name], rtol=1e-5, atol=1e-6)
        assert not torch.allclose(value, trained[last - 1][name]), name
    with pytest.raises(ValueError, match=r"ema_decay: expected None or a value in \(0, 1\)"):
        TrainConfig(ema_decay=1.0)


@pytest.mark.filterwarnings("ignore:.*exists and is not empty")  # train() filters it too
def test_resume_keeps_a_log_killed_before_its_first_train_row(tmp_path: Path) -> None:
    """A kill between epoch 0's checkpoint and the train row Lightning logs after it leaves a
    metrics.csv whose header has no train_loss column (only validation was logged): resuming
    keeps its validation row and writes the train row from the checkpoint's curves."""
    (tmp_path / "metrics.csv").write_text("epoch,step,val_loss\n0,9,2.5\n", encoding="utf-8")
    history = {"train_loss": [1.75], "val_loss": [2.5], "best_epoch": 0}
    callbacks = {training_loop._BestWeights.__qualname__: {"history": history}}
    resumed = {"epoch": 0, "global_step": 10, "callbacks": callbacks}
    training_loop._csv_logger(tmp_path, resumed)
    rows = (tmp_path / "metrics.csv").read_text(encoding="utf-8").splitlines()
    header = rows[0].split(",")
    assert sorted(header) == ["epoch", "step", "train_loss", "val_loss"]
    values = [dict(zip(header, row.split(","), strict=True)) for row in rows[1:]]
    assert values == [
        {"epoch": "0", "step": "9", "train_loss": "", "val_loss": "2.5"},
        {"epoch": "0", "step": "9", "train_loss": "1.75", "val_loss": ""},
    ]
