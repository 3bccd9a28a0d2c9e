"""Distributed data parallel training (2 CPU processes, gloo, localhost).

Lightning's DDP launcher runs the command line again for the second process, so the jobs
run as scripts (tests/_ddp_jobs.py) in subprocesses, two launches for the whole module:
a run killed in its third epoch, then one that resumes it, an uninterrupted run, and the
forecaster, classifier and generator. Each process writes what it saw to a JSON file; the
tests compare those with references computed here, in one process.
"""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from rnnkit.train import TrainConfig
from rnnkit.train.distributed import (
    PADDING,
    PaddingBatch,
    ShardedData,
    SplitBatches,
    is_global_zero,
    make_strategy,
)

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
import _ddp_jobs as jobs  # noqa: E402

# The launchers' variables must not leak in from the environment pytest runs in.
LAUNCH_VARIABLES = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "NODE_RANK", "GROUP_RANK",
                    "MASTER_ADDR", "MASTER_PORT", "SLURM_PROCID", "SLURM_NTASKS",
                    "PL_GLOBAL_SEED", "LOCAL_WORLD_SIZE", "TORCHELASTIC_RUN_ID")  # fmt: skip
TIMEOUT = 600  # seconds; a hung collective fails the test instead of the CI job


def clean_environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in LAUNCH_VARIABLES}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), env.get("PYTHONPATH")]))
    return env


def run_job(out: Path, job: str, expect_kill: bool = False) -> None:
    result = subprocess.run(
        [sys.executable, str(HERE / "_ddp_jobs.py"), str(out), job], cwd=out,
        env=clean_environment(), capture_output=True, text=True, timeout=TIMEOUT,
    )  # fmt: skip
    if expect_kill:
        assert result.returncode == 3, result.stderr[-3000:]
    else:
        assert result.returncode == 0, result.stderr[-3000:]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ddp")
    run_job(out, "killed", expect_kill=True)
    run_job(out, "main")
    return out


def report(out: Path, name: str, rank: int) -> dict[str, Any]:
    return json.loads((out / f"{name}-rank{rank}.json").read_text())


def one_process_loss(network: nn.Module, indices: list[int]) -> torch.Tensor:
    """The mean loss over the training samples ``indices`` in one batch."""
    x, y, _ = jobs.data()[0][indices]
    return nn.functional.mse_loss(network(x), y)


# ---------------------------------------------------------------- what DDP must keep


def test_first_step_equals_one_process_on_the_union_batch(runs: Path) -> None:
    union = [i for rank in (0, 1) for i in report(runs, "full", rank)["batches"][0]]
    assert len(union) == 2 * jobs.BATCH
    network = jobs.Net()
    network.load_state_dict(load_file(runs / "initial.safetensors"))
    # DDP averages the two processes' gradients of their mean losses: with batches of equal
    # size, the gradient of the mean loss over the union of the batches
    one_process_loss(network, union).backward()
    nn.utils.clip_grad_norm_(network.parameters(), TrainConfig().gradient_clip)
    optimiser = torch.optim.AdamW(network.parameters(), lr=1e-2, weight_decay=0.0)
    step1 = load_file(runs / "step1.safetensors")
    for name, parameter in network.named_parameters():
        torch.testing.assert_close(step1[f"grad.{name}"], parameter.grad, rtol=1e-5, atol=1e-7)
    optimiser.step()
    for name, parameter in network.named_parameters():
        torch.testing.assert_close(step1[name], parameter.detach(), rtol=1e-5, atol=1e-7)


def test_each_process_draws_a_disjoint_shard_reshuffled_each_epoch(runs: Path) -> None:
    steps = jobs.STEPS_PER_EPOCH
    drawn = [report(runs, "full", rank)["batches"] for rank in (0, 1)]
    epochs = []
    for epoch in range(3):
        shards = [
            [i for batch in batches[epoch * steps : (epoch + 1) * steps] for i in batch]
            for batches in drawn
        ]
        assert not set(shards[0]) & set(shards[1])
        assert sorted(shards[0] + shards[1]) == list(range(jobs.TRAIN_SIZE))
        epochs.append(shards[0])
    assert epochs[0] != epochs[1] != epochs[2]


def test_validation_loss_equals_one_process_evaluation(runs: Path) -> None:
    history = report(runs, "full", 0)["history"]
    network = jobs.Net()
    network.load_state_dict(load_file(runs / "full.safetensors"))  # the best epoch's
    x, y = jobs.data()[1].tensors
    with torch.no_grad():
        expected = float(nn.functional.mse_loss(network(x), y))
    assert math.isclose(history["val_loss"][history["best_epoch"]], expected, rel_tol=1e-5)


def test_processes_agree_and_only_rank_zero_writes(runs: Path) -> None:
    for name in ("full", "resume"):
        first, second = report(runs, name, 0), report(runs, name, 1)
        assert first["history"] == second["history"]
        assert second["writes"] == []
        written = {Path(path).name for path in first["writes"]}
        assert {"metrics.csv", "last.safetensors"} <= written
    tasks = [report(runs, "tasks", rank) for rank in (0, 1)]
    assert tasks[1]["writes"] == []
    renamed_into_place = {Path(path).name for path in tasks[0]["writes"]}
    assert renamed_into_place >= {"forecaster", "classifier", "generator"}
    full = runs / "runs" / "full"
    rows = (full / "metrics.csv").read_text().splitlines()
    assert len(rows) == 1 + 2 * 3  # a validation and a training row per epoch, once
    leftovers = [p for p in (runs / "runs").rglob("*") if p.name.endswith(".partial")]
    assert leftovers == []


def test_killed_run_resumes_as_the_uninterrupted_one(runs: Path) -> None:
    resumed, full = report(runs, "resume", 0), report(runs, "full", 0)
    assert resumed["history"] == full["history"]
    # the resumed processes drew the third epoch's batches of the uninterrupted run
    for rank in (0, 1):
        tail = report(runs, "full", rank)["batches"][2 * jobs.STEPS_PER_EPOCH :]
        assert report(runs, "resume", rank)["batches"] == tail
    weights = load_file(runs / "resume.safetensors")
    for name, value in load_file(runs / "full.safetensors").items():
        torch.testing.assert_close(weights[name], value, rtol=0, atol=0)
    rows = (runs / "runs" / "killed" / "metrics.csv").read_text()
    assert rows == (runs / "runs" / "full" / "metrics.csv").read_text()


@pytest.mark.parametrize("task", ["forecaster", "classifier", "generator"])
def test_tasks_train_on_two_processes(runs: Path, task: str) -> None:
    from rnnkit.tasks import Forecaster, Generator, SequenceClassifier

    first, second = (report(runs, "tasks", rank)[task] for rank in (0, 1))
    assert first == second  # the same curves and weights in both processes
    assert len(first["history"]["val_loss"]) == 2
    kind = {"forecaster": Forecaster, "classifier": SequenceClassifier, "generator": Generator}
    model = kind[task].load(runs / "runs" / task)
    assert [float(t.double().sum()) for t in model.network.state_dict().values()] == pytest.approx(
        first["weights"], rel=1e-6
    )
    assert model.history.val_loss == pytest.approx(first["history"]["val_loss"])


def test_the_forecasters_baselines_are_computed_once_and_shared(runs: Path) -> None:
    """Global rank 0 runs the statsforecast fits before training and writes them to the
    run folder; the other process reads them there, runs none, and reaches the same choices
    (transform, base, blend, calibration and forms)."""
    first, second = (report(runs, "tasks", rank) for rank in (0, 1))
    assert first["baseline_calls"] > 0
    assert second["baseline_calls"] == 0
    assert first["forecaster choices"] == second["forecaster choices"]
    shared = list((runs / "runs" / "forecaster-logs" / "shared").glob("baselines-*"))
    assert len(shared) == 1 and shared[0].suffix == ".safetensors"


def test_generator_streams_split_across_processes_keep_their_validation_loss(
    runs: Path,
) -> None:
    """With carry_state the validation part is read as STREAMS streams, each carrying its
    state; split among the processes, the loss must be that of reading every stream whole."""
    from rnnkit.tasks.generator import Generator, split_text

    model = Generator.load(runs / "runs" / "generator")
    ids = model.vocabulary.encode(split_text(jobs.text(), 0.1)[1])
    length = jobs.SEQUENCE_LENGTH
    chunks = (len(ids) - 1) // length
    per_stream = chunks // jobs.STREAMS
    total, count = 0.0, 0
    model.network.eval()
    with torch.no_grad():
        for stream in range(jobs.STREAMS):
            start = stream * per_stream * length
            text = torch.tensor(ids[start : start + per_stream * length + 1])
            logits, _ = model.network(text[None, :-1])
            total += float(nn.functional.cross_entropy(logits[0], text[1:], reduction="sum"))
            count += len(text) - 1
    history = model.history
    assert math.isclose(history.val_loss[history.best_epoch], total / count, rel_tol=1e-5)


def test_windows_read_from_disk_train_on_two_processes(runs: Path) -> None:
    """Each process reads its shard of the file's windows; the validation loss equals one
    process's on the windows cut from the series in memory."""
    from rnnkit.data.windows import Scaler, make_windows, window_origins

    first, second = (report(runs, "ondisk", rank) for rank in (0, 1))
    assert first["history"] == second["history"]
    assert len(first["history"]["val_loss"]) == 2
    series = jobs.ondisk_series().astype(np.float32).astype(np.float64)
    scaled = Scaler.fit(series[:500]).transform(series)
    origins = window_origins(500, len(series), jobs.LOOKBACK, 1, 1)
    inputs, targets = make_windows(scaled, scaled[:, :1], origins, jobs.LOOKBACK, 1)
    assert [len(origins)] == first["windows"][1:]
    network = jobs.OnDiskNet()
    network.load_state_dict(load_file(runs / "ondisk.safetensors"))
    with torch.no_grad():
        x = torch.tensor(inputs, dtype=torch.float32)
        expected = float(nn.functional.mse_loss(network(x), torch.tensor(targets[:, 0, 0]).float()))
    history = first["history"]
    assert math.isclose(history["val_loss"][history["best_epoch"]], expected, rel_tol=1e-5)


# ---------------------------------------------------------------- without processes


@pytest.mark.parametrize(("size", "batch"), [(37, 8), (33, 8), (12, 6), (2, 5), (40, 3)])
def test_split_batches_cut_each_one_process_batch_among_the_processes(
    size: int, batch: int
) -> None:
    parts = [list(SplitBatches(size, batch, rank, 2)) for rank in (0, 1)]
    assert len(parts[0]) == len(parts[1])
    assert all(piece for pieces in parts for piece in pieces)
    together = [a + b for a, b in zip(*parts, strict=True)]
    assert [i for group in together for i in group] == list(range(size))  # once, in order
    assert all(len(group) <= batch + 1 for group in together)


def test_batches_smaller_than_the_processes_give_one_item_a_step_and_pad_the_last() -> None:
    # items that are whole batches (the tagger's): one each per step, never two
    assert [list(SplitBatches(3, 1, rank, 2)) for rank in (0, 1)] == [
        [[0], [2]], [[1], [PADDING]],
    ]  # fmt: skip
    assert list(SplitBatches(3, 1, 1, 2, repeat=True)) == [[1], [0]]


def test_a_padding_batch_counts_for_nothing_in_the_validation_loss(tmp_path: Path) -> None:
    data = ShardedData(*jobs.data(), batch_size=1, seed=0, generator=torch.Generator(),
                       shuffle=True, collate_fn=None)  # fmt: skip
    trainer = types.SimpleNamespace(global_rank=1, world_size=2)
    data.trainer = trainer  # type: ignore[assignment]
    batches = list(data.val_dataloader())
    assert len(batches) == math.ceil(jobs.VAL_SIZE / 2)
    assert isinstance(batches[-1], PaddingBatch)  # 37 items: the second process lacks one
    assert not any(isinstance(batch, PaddingBatch) for batch in batches[:-1])


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"ddp_timeout": 0}, "^ddp_timeout: expected a finite float > 0, got 0$"),
        ({"devices": 0}, "^devices: expected an int >= 1, got 0$"),
        ({"devices": 1.5}, "^devices: expected an int"),
        ({"num_nodes": 0}, "^num_nodes: expected an int >= 1, got 0$"),
        ({"strategy": "fsdp"}, "^strategy: expected one of 'auto', 'ddp', got 'fsdp'$"),
        ({"strategy": "ddp_spawn"}, "^strategy: 'ddp_spawn' is not supported"),
    ],
)
def test_train_config_refuses_bad_distribution(options: dict[str, Any], message: str) -> None:
    with pytest.raises((TypeError, ValueError), match=message):
        TrainConfig(**options)


def test_one_process_stays_the_default() -> None:
    config = TrainConfig()
    assert (config.devices, config.num_nodes, config.strategy) == (1, 1, "auto")
    assert make_strategy(1, 1, "auto") == "auto"
    assert make_strategy(2, 1, "auto").process_group_backend == "gloo"
    assert make_strategy(2, 1, "auto")._timeout.total_seconds() == config.ddp_timeout == 300


def test_is_global_zero_reads_the_launchers_rank(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in LAUNCH_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert is_global_zero()
    monkeypatch.setenv("LOCAL_RANK", "0")
    assert is_global_zero()
    monkeypatch.setenv("NODE_RANK", "1")  # the first process of the second machine
    assert not is_global_zero()
    monkeypatch.delenv("NODE_RANK")
    monkeypatch.setenv("RANK", "3")
    assert not is_global_zero()


# ---------------------------------------------------------------- two machines (slow)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_two_machines_of_one_process_equal_two_processes_on_one(runs: Path) -> None:
    """torchrun starts each "machine" (here two on 127.0.0.1) with its node rank; the run
    must draw the same shards and reach the weights of ``devices=2`` on one machine."""
    port = free_port()
    env = clean_environment()
    nodes = []
    for rank in (0, 1):
        command = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2",
                   "--node-rank", str(rank), "--nproc-per-node", "1",
                   "--master-addr", "127.0.0.1", "--master-port", str(port),
                   str(HERE / "_ddp_jobs.py"), str(runs), "nodes"]  # fmt: skip
        nodes.append(subprocess.Popen(command, cwd=runs, env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True))  # fmt: skip
    try:
        outputs = [node.communicate(timeout=TIMEOUT)[0] for node in nodes]
    finally:
        for node in nodes:
            node.kill()
    assert [node.returncode for node in nodes] == [0, 0], outputs[0][-3000:] + outputs[1][-3000:]
    for rank in (0, 1):
        assert report(runs, "nodes", rank)["batches"] == report(runs, "full", rank)["batches"]
    assert report(runs, "nodes", 1)["writes"] == []
    expected = load_file(runs / "full.safetensors")
    for name, value in load_file(runs / "nodes.safetensors").items():
        torch.testing.assert_close(value, expected[name], rtol=1e-6, atol=1e-7)
    nodes, full = report(runs, "nodes", 0)["history"], report(runs, "full", 0)["history"]
    assert nodes["best_epoch"] == full["best_epoch"]
    for curve in ("train_loss", "val_loss"):
        assert nodes[curve] == pytest.approx(full[curve], rel=1e-6)


# ---------------------------------------------------------------- a process that fails


@pytest.mark.parametrize("how", ["before", pytest.param("hang", marks=pytest.mark.slow)])
def test_a_failed_process_stops_the_others_within_ddp_timeout(tmp_path: Path, how: str) -> None:
    """Two "machines" of one process, started as torchrun would (each with its node rank):
    the second dies before joining or hangs in a training step; the first must give up
    after ddp_timeout with ProcessTimeoutError, not wait out gloo's 30 minutes."""
    env = clean_environment() | {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port()),
                                 "LOCAL_RANK": "0", "WORLD_SIZE": "2"}  # fmt: skip
    command = [sys.executable, str(HERE / "_ddp_jobs.py"), str(tmp_path), f"stalled-{how}"]
    nodes = [subprocess.Popen(command, cwd=tmp_path, env=env | {"NODE_RANK": str(rank)},
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for rank in (0, 1)]  # fmt: skip
    try:
        output = nodes[0].communicate(timeout=60)[0]  # far below the default ddp_timeout
    finally:
        for node in nodes:
            node.kill()
            node.communicate()
    assert nodes[0].returncode == 0, output[-3000:]
    first = report(tmp_path, f"stalled-{how}", 0)
    assert first["error"] is not None and first["error"].startswith(
        f"training: process 0 (global rank) waited ddp_timeout = {jobs.STALL_TIMEOUT:g} s "
    )
    assert jobs.STALL_TIMEOUT <= first["seconds"] < jobs.STALL_TIMEOUT + 20


# ---------------------------------------------------------------- the command line

TRAINING_COMMANDS = ["demo", "forecast", "classify", "generate", "tag", "seq2seq", "caption", "ctc"]


@pytest.mark.parametrize("command", TRAINING_COMMANDS)
def test_every_training_command_takes_the_distribution_options(command: str) -> None:
    from typer.testing import CliRunner

    from rnnkit.cli import app

    result = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for option in ("--devices", "--num-nodes", "--strategy"):
        assert option in result.stdout


def test_a_bad_strategy_is_one_line_naming_it(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from rnnkit.cli import app

    text = tmp_path / "text.txt"
    text.write_text("abc " * 200, encoding="utf-8")
    result = CliRunner().invoke(
        app, ["generate", "--data", str(text), "--strategy", "ddp_spawn", "--out", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert result.stderr.strip().startswith("error: strategy: 'ddp_spawn' is not supported")
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_the_command_line_trains_on_two_processes(tmp_path: Path) -> None:
    """Lightning starts the second process by running the console script again; only the
    first prints, samples and saves."""
    text = tmp_path / "text.txt"
    text.write_text(jobs.text(), encoding="utf-8")
    script = Path(sys.executable).parent / "rnnkit"
    result = subprocess.run(
        [str(script), "generate", "--data", str(text), "--devices", "2", "--epochs", "1",
         "--hidden-size", "16", "--sequence-length", "20", "--batch-size", "8", "--length",
         "20", "--out", str(tmp_path / "run")],
        cwd=tmp_path, env=clean_environment(), capture_output=True, text=True, timeout=TIMEOUT,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("Model:") == 1
    assert result.stdout.count("Training a lstm language model") == 1
    assert (tmp_path / "run" / "model" / "weights.safetensors").is_file()
    assert (tmp_path / "run" / "logs" / "checkpoints" / "last.safetensors").is_file()
