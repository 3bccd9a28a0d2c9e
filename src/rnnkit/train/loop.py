"""Training through Lightning: one LightningModule for every task, one ``train`` function.

Tasks give a network and a loss; Lightning runs the loop (progress bar, early stopping,
CSV log of the curves). The best weights by validation loss are kept in memory and restored
at the end, so no pickle-based checkpoint file is ever written or read.
"""

from __future__ import annotations

import copy
import logging
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, EarlyStopping, RichProgressBar
from lightning.pytorch.loggers import CSVLogger
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

LossFn = Callable[[nn.Module, Any], Tensor]


@dataclass
class TrainConfig:
    """How to train; the defaults suit the small bundled datasets on a CPU."""

    max_epochs: int = 30
    patience: int = 5  # epochs without a better validation loss before stopping
    batch_size: int = 64
    learning_rate: float = 3e-3
    weight_decay: float = 0.0
    gradient_clip: float = 1.0  # max global gradient norm (exploding gradients, BPTT)
    seed: int = 0


@dataclass
class History:
    """Per-epoch mean losses; ``best_epoch`` is the epoch whose weights were restored."""

    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    best_epoch: int = -1


class TaskModule(L.LightningModule):
    """A network and its loss as a LightningModule: ``loss_fn(network, batch) -> loss``."""

    def __init__(self, network: nn.Module, loss_fn: LossFn, config: TrainConfig) -> None:
        super().__init__()
        self.network = network
        self.loss_fn = loss_fn
        self.config = config

    def training_step(self, batch: Any, batch_index: int) -> Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: Any, batch_index: int) -> Tensor:
        return self._step(batch, "val")

    def _step(self, batch: Any, stage: str) -> Tensor:
        loss = self.loss_fn(self.network, batch)
        size = len(batch[0]) if isinstance(batch, (tuple, list)) else None
        self.log(
            f"{stage}_loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=size
        )
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(
            self.network.parameters(),
            lr=self.config.learning_rate,
            weight_decay=self.config.weight_decay,
        )


class _BestWeights(Callback):
    """Record the curves and keep a copy of the weights with the lowest validation loss."""

    def __init__(self, history: History) -> None:
        self.history = history
        self.best: dict[str, Tensor] | None = None

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
) -> History:
    """Train ``network`` in place; restore its best weights by validation loss.

    Args:
        network: the model; ``loss_fn(network, batch)`` gives the loss of a batch.
        train_set, val_set: map-style datasets; batches come from a ``DataLoader``.
        config: epochs, patience, batch size, optimiser, clipping and seed.
        log_dir: where Lightning's ``CSVLogger`` writes ``metrics.csv``; None for no log.
        progress: show a rich progress bar.
        trainer: a ``lightning.Trainer`` of your own (its settings win; early stopping and
            the best-weights callback are added to its callbacks).
    """
    L.seed_everything(config.seed, workers=True, verbose=False)
    history = History()
    best = _BestWeights(history)
    callbacks = [best, EarlyStopping("val_loss", patience=config.patience, mode="min")]
    generator = torch.Generator().manual_seed(config.seed)
    loaders = (
        DataLoader(train_set, config.batch_size, shuffle=True, generator=generator,
                   collate_fn=collate_fn),
        DataLoader(val_set, config.batch_size, collate_fn=collate_fn),
    )  # fmt: skip
    with _quiet_lightning():
        if trainer is None:
            trainer = L.Trainer(
                max_epochs=config.max_epochs,
                accelerator="cpu",
                deterministic=True,
                gradient_clip_val=config.gradient_clip,
                log_every_n_steps=1,
                logger=CSVLogger(str(log_dir), name="", version="") if log_dir else False,
                enable_checkpointing=False,
                enable_model_summary=False,
                enable_progress_bar=progress,
                callbacks=[*callbacks, *([RichProgressBar(leave=True)] if progress else [])],
            )
        else:
            trainer.callbacks.extend(callbacks)
        trainer.fit(TaskModule(network, loss_fn, config), *loaders)
    return history


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
            # Lightning 2.6 still calls an API that torch 2.13 deprecates.
            warnings.filterwarnings("ignore", ".*LeafSpec.*")
            yield
    finally:
        logger.setLevel(level)
