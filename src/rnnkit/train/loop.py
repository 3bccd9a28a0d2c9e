"""Training through Lightning: one LightningModule for every task, one ``train`` function.

Tasks give a network and a loss; Lightning runs the loop (progress bar, early stopping,
CSV log of the curves). The best weights by validation loss are restored at the end. With a
``log_dir``, a checkpoint of the whole training state (weights, optimiser, loop counters,
curves, random generators) is written after every epoch as safetensors + JSON (never
pickle), and ``resume=True`` continues an interrupted run from it exactly.
"""

from __future__ import annotations

import copy
import csv
import logging
import math
import signal
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import (
    Callback,
    EarlyStopping,
    EMAWeightAveraging,
    ModelCheckpoint,
    RichProgressBar,
)
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.utilities.data import extract_batch_size
from torch import Tensor, nn
from torch.utils.data import Dataset

from rnnkit.checks import check_choice, check_int, check_positive_float
from rnnkit.train.checkpoint import SafetensorsCheckpointIO, load_checkpoint, weight_shapes
from rnnkit.train.distributed import (
    DDP_TIMEOUT,
    STRATEGIES,
    PaddingBatch,
    ProcessTimeoutError,
    ShardedData,
    is_global_zero,
    make_strategy,
)
from rnnkit.train.io import ModelFileError, first_difference

LossFn = Callable[[nn.Module, Any], Tensor]
CHECKPOINT = Path("checkpoints") / "last.safetensors"  # inside log_dir
PRECISIONS = ("32", "bf16-mixed")


@dataclass
class TrainConfig:
    """How to train; the defaults suit the small bundled datasets on a CPU."""

    max_epochs: int = 30
    patience: int = 5  # epochs without a better validation loss before stopping
    batch_size: int = 64
    learning_rate: float = 3e-3
    # Decoupled (AdamW, Loshchilov & Hutter 2019): each step also shrinks every weight by
    # learning_rate * weight_decay of itself, apart from the gradient's adaptive step.
    weight_decay: float = 0.0
    gradient_clip: float = 1.0  # max global gradient norm (exploding gradients, BPTT)
    seed: int = 0
    # None: a constant learning rate; else a cosine decay from learning_rate to this over
    # the max_epochs' steps after the warmup (Loshchilov & Hutter 2017).
    final_learning_rate: float | None = None
    # Raise the learning rate linearly over this many first steps (from learning_rate / this)
    # before the constant rate or the cosine: Adam's first steps are about learning_rate in
    # size whatever the gradient's, and so many of them can undo the initial weights.
    warmup_steps: int = 0
    # "bf16-mixed": Lightning's autocast to bfloat16 for the training steps (weights stay
    # float32, validation runs in float32); faster per step on CPUs with AVX-512 BF16.
    precision: str = "32"
    # None: validate and keep the trained weights; else their exponential moving average
    # over the training steps (Lightning's EMAWeightAveraging), which validation, the
    # restored epoch and the saved model then use.
    ema_decay: float | None = None
    # Distributed data parallel (Lightning's DDP, gloo backend): this many processes on each
    # of num_nodes machines, each training on its part of the data. batch_size is per
    # process: a step averages the gradients of batch_size * devices * num_nodes samples.
    devices: int = 1
    num_nodes: int = 1
    # "auto": one process when devices * num_nodes is 1, else "ddp" (Lightning starts the
    # other processes by running the script's command line again; torchrun or SLURM may
    # start them instead).
    strategy: str = "auto"
    # Seconds a process of a distributed run waits for the others (to join, or at a
    # gradient all-reduce) before it fails with ProcessTimeoutError: a process that crashed
    # before training, or hangs, stops the run within this bound. Raise it where processes
    # legitimately start far apart (a long data preparation under torchrun or SLURM).
    ddp_timeout: float = DDP_TIMEOUT

    def __post_init__(self) -> None:
        check_choice("precision", self.precision, PRECISIONS)
        check_int("devices", self.devices, minimum=1)
        check_int("num_nodes", self.num_nodes, minimum=1)
        if self.strategy == "ddp_spawn":
            raise ValueError(
                "strategy: 'ddp_spawn' is not supported (its processes would keep the training "
                "curves and the best weights); use 'ddp', which runs the script again"
            )
        check_choice("strategy", self.strategy, STRATEGIES)
        check_positive_float("ddp_timeout", self.ddp_timeout)
        check_int("warmup_steps", self.warmup_steps, minimum=0)
        check_positive_float("learning_rate", self.learning_rate)
        if not self.weight_decay >= 0:
            raise ValueError(f"weight_decay: expected a value >= 0, got {self.weight_decay}")
        if self.ema_decay is not None and not 0 < self.ema_decay < 1:
            raise ValueError(f"ema_decay: expected None or a value in (0, 1), got {self.ema_decay}")
        final = self.final_learning_rate
        if final is not None and not 0 <= final <= self.learning_rate:
            raise ValueError(
                f"final_learning_rate: expected None or a value in [0, learning_rate] = "
                f"[0, {self.learning_rate}], got {final}"
            )


@dataclass
class History:
    """Per-epoch mean losses; ``best_epoch`` is the epoch whose weights were restored."""

    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    best_epoch: int = -1


class DivergedError(RuntimeError):
    """The training or validation loss stopped being a finite number."""


class TaskModule(L.LightningModule):
    """A network and its loss as a LightningModule: ``loss_fn(network, batch) -> loss``."""

    def __init__(self, network: nn.Module, loss_fn: LossFn, config: TrainConfig) -> None:
        super().__init__()
        self.network = network
        self.loss_fn = loss_fn
        self.config = config
        # Under DDP, the size-weighted sum of the losses and the sum of the batch sizes of
        # this process's epoch so far, by stage
        self.totals = {stage: torch.zeros(2, dtype=torch.float64) for stage in ("train", "val")}

    def training_step(self, batch: Any, batch_index: int) -> Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: Any, batch_index: int) -> Tensor:
        # In full precision whatever the training's: the validation loss picks the restored
        # epoch and stops training, so it measures the float32 model evaluate() will see.
        with torch.autocast(self.device.type, enabled=False):
            return self._step(batch, "val")

    def _step(self, batch: Any, stage: str) -> Tensor:
        padding = isinstance(batch, PaddingBatch)  # under DDP: a spare validation step
        batch = batch.batch if padding else batch
        loss = self.loss_fn(self.network, batch)
        finite = bool(torch.isfinite(loss))
        if self.trainer.world_size > 1:  # all processes stop together, or none waits forever
            finite = self.trainer.strategy.reduce_boolean_decision(finite, all=True)
        if not finite:
            value, epoch = float(loss.detach()), self.current_epoch
            raise DivergedError(
                f"training: the {stage} loss is {value} at epoch {epoch}, "
                f"step {self.global_step}; training stopped, and the network is back at the "
                "weights of its best epoch (its initial weights before any). Likely causes: "
                f"learning_rate {self.config.learning_rate} too high for this data, or values "
                "in the data that are not finite or far out of range"
            )
        size = len(batch[0]) if isinstance(batch, (tuple, list)) else None
        if self.trainer.world_size > 1:  # _ReducedLosses logs the epoch's mean
            weight = 0 if padding else size if size is not None else extract_batch_size(batch)
            value = float(loss.detach()) * weight
            self.totals[stage] += torch.tensor([value, weight], dtype=torch.float64)
            return loss
        self.log(
            f"{stage}_loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=size
        )
        return loss

    def configure_optimizers(self) -> Any:
        config = self.config
        optimizer = torch.optim.AdamW(
            self.network.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
        )
        if config.final_learning_rate is None and config.warmup_steps == 0:
            return optimizer
        total = int(self.trainer.estimated_stepping_batches)
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: learning_rate_factor(config, step, total)
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}


def learning_rate_factor(config: TrainConfig, step: int, total: int) -> float:
    """The learning rate of optimiser step ``step`` (from 0) of ``total``, as a fraction of
    ``config.learning_rate``: the linear warmup, then constant or the cosine decay to
    ``final_learning_rate`` over the steps left (Loshchilov & Hutter 2017)."""
    warmup = config.warmup_steps
    if step < warmup:
        return (step + 1) / warmup
    if config.final_learning_rate is None:
        return 1.0
    floor = config.final_learning_rate / config.learning_rate
    progress = (step - warmup) / max(1, total - warmup)
    return floor + (1 - floor) * (1 + math.cos(math.pi * progress)) / 2


class _BestWeights(Callback):
    """Record the curves and keep a copy of the weights with the lowest validation loss."""

    def __init__(self, history: History) -> None:
        self.history = history
        self.best: dict[str, Tensor] | None = None
        self.initial: dict[str, Tensor] | None = None  # restored if no epoch finishes

    def on_fit_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if self.best is None:
            self.initial = copy.deepcopy(module.network.state_dict())

    def on_validation_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        val = float(trainer.callback_metrics["val_loss"])
        if not self.history.val_loss or val < min(self.history.val_loss):
            self.best = copy.deepcopy(module.network.state_dict())
            self.history.best_epoch = len(self.history.val_loss)
        self.history.val_loss.append(val)

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.history.train_loss.append(float(trainer.callback_metrics["train_loss"]))

    def on_fit_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if self.best is not None:
            module.network.load_state_dict(self.best)

    def on_exception(
        self, trainer: L.Trainer, module: L.LightningModule, exception: BaseException
    ) -> None:
        if isinstance(exception, DivergedError):  # not the weights that diverged
            module.network.load_state_dict(self.best or self.initial)

    def state_dict(self) -> dict[str, Any]:
        return {"history": vars(self.history), "best": self.best}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        vars(self.history).update(state["history"])
        self.best = state["best"]


class _ReducedLosses(Callback):
    """Under DDP, log each epoch's loss as the mean over all processes' samples (each
    batch's loss weighted by its size), so that it equals one process's on the same weights.

    Lightning's own reduction (``sync_dist``) averages the processes' sample counts as an
    integer: with 19 and 18 samples it divides by 2 * 18, not 37. Listed first, so that the
    callbacks after it read the reduced loss.
    """

    def on_train_epoch_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        module.totals["train"].zero_()

    def on_validation_epoch_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        module.totals["val"].zero_()

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._log(trainer, module, "train")

    def on_validation_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._log(trainer, module, "val")

    def _log(self, trainer: L.Trainer, module: L.LightningModule, stage: str) -> None:
        if trainer.world_size == 1:
            return
        totals = module.totals[stage].clone()
        torch.distributed.all_reduce(totals)
        mean = (totals[0] / totals[1]).float()
        # the same number in every process: sync_dist only averages equal values
        module.log(
            f"{stage}_loss", mean, on_step=False, on_epoch=True, prog_bar=True, sync_dist=True
        )


class _RandomState(Callback):
    """Checkpoint the generators that drive dropout and shuffling, so a resumed run draws
    the same numbers as an uninterrupted one (under DDP, every process's own generator)."""

    def __init__(self, loader_generator: torch.Generator) -> None:
        self.loader_generator = loader_generator
        self.trainer: L.Trainer | None = None

    def setup(self, trainer: L.Trainer, module: L.LightningModule, stage: str) -> None:
        self.trainer = trainer

    def state_dict(self) -> dict[str, Any]:
        state = {"torch": torch.get_rng_state(), "loader": self.loader_generator.get_state()}
        trainer = self.trainer
        if trainer is not None and trainer.world_size > 1:  # every process saves a checkpoint
            states = [torch.empty_like(state["torch"]) for _ in range(trainer.world_size)]
            torch.distributed.all_gather(states, state["torch"])
            state["torch_by_rank"] = torch.stack(states)
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        trainer = self.trainer
        by_rank = state.get("torch_by_rank")
        if trainer is not None and by_rank is not None and len(by_rank) == trainer.world_size:
            # a copy, not a view: torch reads the state from the start of its storage
            torch.set_rng_state(by_rank[trainer.global_rank].clone())
        else:
            torch.set_rng_state(state["torch"])
        self.loader_generator.set_state(state["loader"])


def train(
    network: nn.Module,
    loss_fn: LossFn,
    train_set: Dataset,
    val_set: Dataset,
    config: TrainConfig,
    log_dir: str | Path | None = None,
    progress: bool = True,
    trainer: L.Trainer | None = None,
    collate_fn: Callable[[list[Any]], Any] | None = None,
    resume: bool = False,
    shuffle: bool = True,
) -> History:
    """Train ``network`` in place; restore its best weights by validation loss.

    Args:
        network: the model; ``loss_fn(network, batch)`` gives the loss of a batch.
        train_set, val_set: map-style datasets; batches come from a ``DataLoader``.
        config: epochs, patience, batch size, optimiser, clipping and seed.
        log_dir: the run's folder: Lightning's ``CSVLogger`` writes ``metrics.csv`` there and
            a checkpoint goes to ``checkpoints/last.safetensors`` after every epoch. None: no
            files, no checkpoint.
        progress: show a rich progress bar.
        trainer: a ``lightning.Trainer`` of your own (its settings win; early stopping, the
            best-weights and, with ``log_dir``, the checkpoint callbacks are added to it).
            A distributed one needs ``use_distributed_sampler=False``: rnnkit shards the
            data itself.
        resume: continue from the checkpoint in ``log_dir`` (same network, data and
            config); the result equals that of a run that was never interrupted.
        shuffle: draw training batches in random order; False keeps the dataset's order
            (for a loss that carries state from one batch into the next).

    With ``config.devices`` or ``config.num_nodes`` above 1 the training runs in several
    processes (Lightning's DDP; see :mod:`rnnkit.train.distributed`): each trains on its
    part of the data, the losses are reduced over all of them, and only global rank 0
    writes ``metrics.csv`` and the checkpoint. Every process returns the same network and
    history.

    Raises:
        KeyboardInterrupt: training was interrupted (Ctrl-C); the checkpoint of the last
            finished epoch is intact.
        ProcessTimeoutError: under DDP, this process waited ``config.ddp_timeout`` seconds
            for the others (one crashed before joining, or hangs).
    """
    checkpoint = Path(log_dir) / CHECKPOINT if log_dir is not None else None
    if resume and (checkpoint is None or not checkpoint.is_file()):
        where = f"in {str(log_dir)!r}" if log_dir is not None else "without a log_dir"
        raise FileNotFoundError(f"resume: no checkpoint {where}; start without resume first")
    if resume:
        _check_same_network(checkpoint, network)
    resumed = load_checkpoint(checkpoint) if resume else None
    L.seed_everything(config.seed, workers=True, verbose=False)
    history = History()
    generator = torch.Generator().manual_seed(config.seed)
    callbacks: list[Callback] = [
        _ReducedLosses(),
        _BestWeights(history),
        _RandomState(generator),
        EarlyStopping("val_loss", patience=config.patience, mode="min"),
    ]
    if config.ema_decay is not None:  # after _BestWeights, which keeps the average it validated
        callbacks.append(EMAWeightAveraging(decay=config.ema_decay))
    if checkpoint is not None:
        # Saved at the end of the training epoch, after the curves of the epoch are recorded.
        saver = ModelCheckpoint(
            checkpoint.parent,
            checkpoint.stem,
            enable_version_counter=False,
            save_on_train_epoch_end=True,
        )
        saver.FILE_EXTENSION = checkpoint.suffix
        callbacks.append(saver)
    data = ShardedData(
        train_set, val_set, config.batch_size, config.seed, generator, shuffle, collate_fn
    )
    with _quiet_lightning(), _restored_sigint():
        if trainer is None:
            trainer = L.Trainer(
                max_epochs=config.max_epochs,
                accelerator="cpu",
                devices=config.devices,
                num_nodes=config.num_nodes,
                strategy=make_strategy(
                    config.devices, config.num_nodes, config.strategy, config.ddp_timeout
                ),
                use_distributed_sampler=False,  # ShardedData gives each process its part
                deterministic=True,
                gradient_clip_val=config.gradient_clip,
                precision=config.precision,
                log_every_n_steps=1,
                logger=_csv_logger(log_dir, resumed) if log_dir is not None else False,
                enable_checkpointing=checkpoint is not None,
                enable_model_summary=False,
                enable_progress_bar=progress,
                callbacks=[*callbacks, *([RichProgressBar(leave=True)] if progress else [])],
                plugins=[SafetensorsCheckpointIO()],
            )
        else:
            if trainer.world_size > 1 and trainer._accelerator_connector.use_distributed_sampler:
                raise ValueError(
                    "trainer: a distributed trainer needs use_distributed_sampler=False "
                    "(rnnkit gives each process its part of the data)"
                )
            trainer.callbacks.extend(callbacks)
            trainer.strategy.checkpoint_io = SafetensorsCheckpointIO()
        module = TaskModule(network, loss_fn, config)
        try:
            trainer.fit(module, datamodule=data, ckpt_path=checkpoint if resume else None)
        except SystemExit:
            if trainer.interrupted:  # Lightning exits the process on Ctrl-C; a library must not
                raise KeyboardInterrupt from None
            raise
        except RuntimeError as error:  # gloo's and the rendezvous store's "Timed out ..."
            if trainer.world_size > 1 and "timed out" in str(error).lower():
                raise ProcessTimeoutError(
                    f"training: process {trainer.global_rank} (global rank) waited "
                    f"ddp_timeout = {config.ddp_timeout:g} s for the other processes and gave "
                    "up: one of them failed (its error is in its own output), hangs, or was "
                    "never started; if they only start late (a long preparation under torchrun "
                    "or SLURM), raise ddp_timeout in TrainConfig"
                ) from error
            raise
    return history


def _check_same_network(checkpoint: Path, network: nn.Module) -> None:
    """Refuse a checkpoint of another architecture with a clear message (Lightning would
    fail deep inside ``load_state_dict``)."""
    saved = weight_shapes(checkpoint)
    wanted = {f"network.{k}": tuple(v.shape) for k, v in network.state_dict().items()}
    differing = first_difference(saved, wanted)
    if differing is not None:
        raise ModelFileError(
            f"resume: {str(checkpoint)!r} was written by a different model (e.g. weight "
            f"{differing.removeprefix('network.')!r} differs); use the same settings as the "
            "interrupted run, or start without resume"
        )


def _csv_logger(log_dir: str | Path, resumed: dict[str, Any] | None) -> CSVLogger:
    """Lightning's CSV logger; when resuming from the checkpoint ``resumed``, it keeps the
    interrupted run's curves up to that checkpoint (left alone, it deletes them).

    A kill can land after the next epoch's validation row is written but before its
    checkpoint, or between a checkpoint and the train row Lightning logs just after it,
    or halfway through writing a row. So only the rows before the checkpoint's train row
    are kept, and that row is written again from the checkpoint's record of the curves.
    """
    logger = CSVLogger(str(log_dir), name="", version="")
    if not is_global_zero():  # the logger writes from global rank 0 only; leave its file be
        return logger
    metrics = Path(log_dir) / "metrics.csv"
    rows: list[dict[str, Any]] = []
    if resumed is not None and metrics.is_file():
        with metrics.open(newline="", encoding="utf-8") as file:
            rows = [row for row in csv.DictReader(file) if _before_train_row(row, resumed["epoch"])]
    writer = logger.experiment  # creating the writer is what deletes the file
    if resumed is not None:
        curves = resumed["callbacks"][_BestWeights.__qualname__]["history"]
        step = resumed["global_step"] - 1  # Lightning's step for epoch-end metrics
        rows.append(
            {"epoch": resumed["epoch"], "step": step, "train_loss": curves["train_loss"][-1]}
        )
        writer.metrics = rows
        writer.save()
    return logger


def _before_train_row(row: dict[str, str | None], epoch: int) -> bool:
    """Whether a whole row of ``metrics.csv`` precedes the train row of ``epoch``. A file
    killed before its first train row has no ``train_loss`` column at all."""
    if None in row.values():  # a row cut short
        return False
    trained = row.get("train_loss")
    return int(row["epoch"]) < epoch or (int(row["epoch"]) == epoch and not trained)


@contextmanager
def _restored_sigint() -> Iterator[None]:
    """Lightning ignores Ctrl-C after catching one; give the caller its handler back."""
    handler = signal.getsignal(signal.SIGINT)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, handler)


@contextmanager
def _quiet_lightning() -> Iterator[None]:
    """Silence Lightning's start-up banner and its advice on DataLoader workers (the
    datasets are in-memory tensors; worker processes would only add start-up cost)."""
    logger = logging.getLogger("lightning.pytorch")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", ".*does not have many workers.*")
            # A new run in an old run's folder replaces its logs, as intended.
            warnings.filterwarnings("ignore", ".*exists and is not empty.*")
            # Lightning 2.6 still calls an API that torch 2.13 deprecates.
            warnings.filterwarnings("ignore", ".*LeafSpec.*")
            yield
    finally:
        logger.setLevel(level)
