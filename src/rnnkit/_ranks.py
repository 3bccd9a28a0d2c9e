"""Which process of a distributed run this is, from what its launcher put in the
environment. Torch-free, so the command line can quiet its further processes at start-up."""

from __future__ import annotations

import os

# torchrun and Lightning (RANK, LOCAL_RANK, NODE_RANK, GROUP_RANK), SLURM (SLURM_PROCID)
RANK_VARIABLES = ("RANK", "SLURM_PROCID", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK")


def launched_as_zero() -> bool:
    """Whether the launcher's variables (none in a plain run) make this global rank 0."""
    return all(os.environ.get(name, "0") == "0" for name in RANK_VARIABLES)
