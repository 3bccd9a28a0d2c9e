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

A process that waits longer than the strategy's timeout (:data:`DDP_TIMEOUT` seconds by
default, ``TrainConfig.ddp_timeout``) for the others, to join the run or in a collective,
gives up with :class:`ProcessTimeoutError`, instead of gloo's default 30 minutes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.strategies import DDPStrategy, Strategy
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler, default_collate

from rnnkit.ranks import launched_as_zero, on_first_machine

STRATEGIES = ("auto", "ddp")
# Seconds a process waits for the others (to join the run, or in a collective) before it
# gives up: long enough for processes that start at different times under torchrun or
# SLURM, short enough that a crashed or stuck process does not hold the others for gloo's
# default 30 minutes.
DDP_TIMEOUT = 300.0


class ProcessTimeoutError(RuntimeError):
    """A process of a distributed run waited longer than ``ddp_timeout`` for the others."""


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


def written_by_rank_zero(path: Path, timeout: float = DDP_TIMEOUT) -> bool:
    """Whether this process should read ``path``, a file that global rank 0 writes (with
    :func:`rnnkit.atomic.atomic_file`, under a name that fixes its content) instead of
    every process making it: False in rank 0, which makes it; in the other processes on
    rank 0's machine, True once it is there (polling for at most ``timeout`` seconds); on
    the other machines, whether it is there already (their storage may not be rank 0's,
    so they make their own rather than wait for it).

    Raises:
        ProcessTimeoutError: ``path`` did not appear within ``timeout`` seconds.
    """
    if is_global_zero():
        return False
    if not on_first_machine():
        return path.is_file()
    deadline = time.monotonic() + timeout
    while not path.is_file():
        if time.monotonic() > deadline:
            raise ProcessTimeoutError(
                f"training: waited ddp_timeout = {timeout:g} s for global rank 0 to write "
                f"{str(path)!r}: it failed (its error is in its own output) or is slow; if it "
                "is only slow, raise ddp_timeout in TrainConfig"
            )
        time.sleep(0.1)
    return True


def make_strategy(
    devices: int, num_nodes: int, strategy: str, timeout: float = DDP_TIMEOUT
) -> str | Strategy:
    """Lightning's strategy for ``devices`` processes on each of ``num_nodes`` machines:
    one process as before, else DDP on the gloo backend (rnnkit trains on CPUs), whose
    processes wait at most ``timeout`` seconds for each other."""
    if devices * num_nodes == 1 and strategy == "auto":
        return "auto"
    # static_graph: a network's training loss uses the same parameters at every step, but
    # not always all of them (the forecaster's quantile head trains afterwards), which DDP
    # then learns once in the first step instead of searching the graph at every step.
    return DDPStrategy(
        process_group_backend="gloo",
        start_method="popen",
        static_graph=True,
        timeout=timedelta(seconds=timeout),
    )


PADDING = -1  # a SplitBatches index: this process has no item left in this step


@dataclass
class PaddingBatch:
    """A batch that only keeps a process in step with the others: its loss is computed
    (the network's forward runs, as DDP's collectives need) and counts for nothing."""

    batch: Any


class SplitBatches(Sampler[list[int]]):
    """The batches of a one-process run in dataset order (``batch_size`` consecutive
    indices), each cut into ``world_size`` contiguous pieces of which this process takes
    piece ``rank``. Every process gets the same number of batches (DDP's collectives need
    it) and none is empty: a last batch with fewer than ``world_size`` indices joins the
    one before it.

    With ``batch_size`` below ``world_size`` (a task whose items are whole batches, as the
    tagger's), each process takes one item a step; in the last step a process left
    without one gets :data:`PADDING`, or with ``repeat`` item 0 again.
    """

    def __init__(
        self, size: int, batch_size: int, rank: int, world_size: int, repeat: bool = False
    ) -> None:
        if batch_size < world_size or size < world_size:
            spare = 0 if repeat else PADDING
            self.batches = [
                [start + rank if start + rank < size else spare]
                for start in range(0, size, world_size)
            ]
            return
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


class _Padded(Dataset):
    """``dataset`` where :data:`PADDING` reads item 0, marked to count for nothing."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __getitem__(self, index: int) -> Any:
        return _Pad(self.dataset[0]) if index == PADDING else self.dataset[index]

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]


@dataclass
class _Pad:
    item: Any


def _collating_padding(collate: Callable[[list[Any]], Any] | None) -> Callable[[list[Any]], Any]:
    collate = collate or default_collate

    def collating(items: list[Any]) -> Any:
        if items and all(isinstance(item, _Pad) for item in items):
            return PaddingBatch(collate([item.item for item in items]))
        return collate(items)

    return collating


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
            return DataLoader(
                dataset,
                self.batch_size,
                shuffle=self.shuffle,
                generator=self.generator,
                collate_fn=self.collate_fn,
            )
        if not self.shuffle:  # every item counts in training: a spare step repeats item 0
            batches = SplitBatches(len(dataset), self.batch_size, rank, world, repeat=True)  # type: ignore[arg-type]
            return DataLoader(dataset, batch_sampler=batches, collate_fn=self.collate_fn)
        sampler = DistributedSampler(
            dataset, num_replicas=world, rank=rank, shuffle=True, seed=self.seed
        )  # Lightning's fit loop calls its set_epoch: a new permutation each epoch
        return DataLoader(dataset, self.batch_size, sampler=sampler, collate_fn=self.collate_fn)

    def val_dataloader(self) -> DataLoader:
        dataset, (rank, world) = self.sets[1], self._world()
        if world == 1:
            return DataLoader(dataset, self.batch_size, collate_fn=self.collate_fn)
        batches = SplitBatches(len(dataset), self.batch_size, rank, world)  # type: ignore[arg-type]
        return DataLoader(
            _Padded(dataset), batch_sampler=batches, collate_fn=_collating_padding(self.collate_fn)
        )
