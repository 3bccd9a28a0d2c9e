"""Which process of a distributed run this is, from what its launcher put in the
environment. Torch-free, so the command line can quiet its further processes at start-up."""

from __future__ import annotations

import os

# torchrun and Lightning (RANK, LOCAL_RANK, NODE_RANK, GROUP_RANK), SLURM (SLURM_PROCID)
RANK_VARIABLES = ("RANK", "SLURM_PROCID", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK")
# which machine: Lightning (NODE_RANK), torchrun (GROUP_RANK), SLURM (SLURM_NODEID)
NODE_VARIABLES = ("NODE_RANK", "GROUP_RANK", "SLURM_NODEID")


def launched_as_zero() -> bool:
    """Whether the launcher's variables (none in a plain run) make this global rank 0."""
    return all(os.environ.get(name, "0") == "0" for name in RANK_VARIABLES)


def on_first_machine() -> bool:
    """Whether the launcher's variables (none in a plain run) put this process on the
    machine of global rank 0, whose files it can read wherever they are."""
    return all(os.environ.get(name, "0") == "0" for name in NODE_VARIABLES)
