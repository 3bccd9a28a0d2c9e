"""Distributed data parallel training (Lightning's DDP) for :func:`rnnkit.train.train`.

Lightning runs the processes, reduces the gradients and the logged losses, and writes the
checkpoints from global rank 0; this module gives each process its part of the data and
tells the rest of rnnkit which process is rank 0 (the one that writes files).

* Training, shuffled: :class:`torch.utils.data.DistributedSampler` with the run's seed.
  Every epoch each process draws a disjoint ``1 / world_size`` of a permutation that the
  seed and the epoch number fix (the last few indices repeat so that every process takes
  the same number of steps). ``batch_size`` is per process: one optimiser step averages
  the gradients of ``batch_size * world_size`` samples.
* Training in order (a loss that carries state from a batch into the next) and
  validation: :class:`SplitBatches` cuts each batch of a one-process run into one
  piece per process, so batch ``k`` of every process is a part of that run's batch ``k``
  (a stream keeps its place in every batch) and nothing is counted twice. With the
  losses reduced as means weighted by batch size, the validation loss is the one a
  single process computes on the same weights.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.strategies import DDPStrategy, Strategy
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from rnnkit._ranks import launched_as_zero

STRATEGIES = ("auto", "ddp")


def is_global_zero() -> bool:
    """Whether this process is global rank 0, the one that writes files: True in a run of
    one process. Use it in a training script to plot or print once::

        model.fit(series)
        if is_global_zero():
            plot_training("curves.png", ...)

    After a distributed ``fit`` the process group's rank decides; before one, the rank
    the launcher (torchrun, SLURM, Lightning's) put in the environment.
    """
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank() == 0
    return launched_as_zero()


def make_strategy(devices: int, num_nodes: int, strategy: str) -> str | Strategy:
    """Lightning's strategy for ``devices`` processes on each of ``num_nodes`` machines:
    one process as before, else DDP on the gloo backend (rnnkit trains on CPUs)."""
    if devices * num_nodes == 1 and strategy == "auto":
        return "auto"
    # static_graph: a network's training loss uses the same parameters at every step, but
    # not always all of them (the forecaster's quantile head trains afterwards), which DDP
    # then learns once in the first step instead of searching the graph at every step.
    return DDPStrategy(process_group_backend="gloo", start_method="popen", static_graph=True)


class SplitBatches(Sampler[list[int]]):
    """The batches of a one-process run in dataset order (``batch_size`` consecutive
    indices), each cut into ``world_size`` contiguous pieces of which this process takes
    piece ``rank``. Every process gets the same number of batches (DDP's collectives need
    it) and none is empty: a last batch with fewer than ``world_size`` indices joins the
    one before it.

    Raises:
        ValueError: the dataset has fewer than ``world_size`` items.
    """

    def __init__(self, size: int, batch_size: int, rank: int, world_size: int) -> None:
        if size < world_size:
            raise ValueError(
                f"devices: {world_size} processes need at least {world_size} items in each "
                f"of the training and validation sets, got {size}"
            )
        starts = list(range(0, size, batch_size))
        if size - starts[-1] < world_size:
            starts.pop()  # the last batch is too small to split: it joins the one before
        ends = [*starts[1:], size]
        self.batches = [
            [int(i) for i in np.array_split(np.arange(start, end), world_size)[rank]]
            for start, end in zip(starts, ends, strict=True)
        ]

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


class ShardedData(L.LightningDataModule):
    """The training and validation loaders, made once the processes are running: in one
    process those of a plain run (the shuffled order drawn from ``generator``), in several
    each process's part (see the module's docstring)."""

    def __init__(
        self,
        train_set: Dataset,
        val_set: Dataset,
        batch_size: int,
        seed: int,
        generator: torch.Generator,
        shuffle: bool,
        collate_fn: Callable[[list[Any]], Any] | None,
    ) -> None:
        super().__init__()
        self.sets = (train_set, val_set)
        self.batch_size, self.seed, self.generator = batch_size, seed, generator
        self.shuffle, self.collate_fn = shuffle, collate_fn

    def _world(self) -> tuple[int, int]:
        trainer = self.trainer
        return (0, 1) if trainer is None else (trainer.global_rank, trainer.world_size)

    def train_dataloader(self) -> DataLoader:
        dataset, (rank, world) = self.sets[0], self._world()
        if world == 1:
            return DataLoader(dataset, self.batch_size, shuffle=self.shuffle,
                              generator=self.generator, collate_fn=self.collate_fn)  # fmt: skip
        if not self.shuffle:
            return self._split(dataset, rank, world)
        sampler = DistributedSampler(
            dataset, num_replicas=world, rank=rank, shuffle=True, seed=self.seed
        )  # Lightning's fit loop calls its set_epoch: a new permutation each epoch
        return DataLoader(dataset, self.batch_size, sampler=sampler, collate_fn=self.collate_fn)

    def val_dataloader(self) -> DataLoader:
        dataset, (rank, world) = self.sets[1], self._world()
        if world == 1:
            return DataLoader(dataset, self.batch_size, collate_fn=self.collate_fn)
        return self._split(dataset, rank, world)

    def _split(self, dataset: Dataset, rank: int, world: int) -> DataLoader:
        batches = SplitBatches(len(dataset), self.batch_size, rank, world)  # type: ignore[arg-type]
        return DataLoader(dataset, batch_sampler=batches, collate_fn=self.collate_fn)
