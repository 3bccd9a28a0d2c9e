"""What every command shares: the consoles and the one-line error convention."""

from __future__ import annotations

import csv
import functools
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.text import Text

from rnnkit._ranks import launched_as_zero

# The further processes of a distributed run print nothing (their errors still show).
console = Console(quiet=not launched_as_zero())
errors = Console(stderr=True)
Command = TypeVar("Command", bound=Callable[..., Any])
Resume = Annotated[
    bool,
    typer.Option("--resume", help="Continue an interrupted run from its checkpoint in OUT/logs."),
]

Devices = Annotated[
    int,
    typer.Option(
        "--devices", min=1,
        help="Training processes on each machine (distributed data parallel on gloo); the "
        "batch size is per process.",
    ),
]  # fmt: skip
NumNodes = Annotated[
    int,
    typer.Option(
        "--num-nodes", min=1,
        help="Machines training together; start the command on each (torchrun, SLURM: see "
        "docs/distributed.md).",
    ),
]  # fmt: skip
Strategy = Annotated[
    str, typer.Option("--strategy", help="auto (one process; ddp for several) or ddp.")
]


def further_process() -> bool:
    """Whether this is a process of a distributed run other than global rank 0: after
    training, it leaves the evaluation, the figures and the model folder to rank 0."""
    from rnnkit.train.distributed import is_global_zero

    return not is_global_zero()


def user_errors(command: Command) -> Command:
    """Turn the library's input errors into one readable line on stderr and exit code 2,
    and Ctrl-C into a hint to resume and exit code 130."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except (ValueError, TypeError, OSError, RuntimeError, csv.Error) as error:
            # OSError: a file that cannot be read or written (permissions, a folder in its place)
            print_error(str(error))
            raise typer.Exit(2) from None
        except MemoryError:
            print_error("not enough memory for what was asked (a model or its inputs too large)")
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            errors.print("interrupted: the checkpoint of the last finished epoch is kept; run "
                         "the same command with --resume to continue")  # fmt: skip
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def print_error(text: str, label: str = "error:") -> None:
    """One line on stderr: a Text, not markup, for the message quotes users' files and
    libraries ("[/x]", ":x:")."""
    errors.print(Text.assemble((label, "bold red"), f" {text}"), highlight=False, soft_wrap=True)


#: Data a saved model may name by itself: the bundled datasets and the generated ones.
GENERATED = ("digits", "dates")


def bundled(data: object) -> bool:
    """Whether ``data`` names bundled (or generated) data rather than a file."""
    from rnnkit.data import DATASETS

    return data in (*DATASETS, *GENERATED)


def evaluation_source(model_dir: Path, recorded: dict[str, Any] | None, data: str | None) -> dict:
    """The data to re-evaluate a saved model on: the options its folder records (columns,
    split fractions, seed) with ``data`` from the user. A folder only names its data by a
    bundled name: a model folder is untrusted input, and never chooses a file to open."""
    if recorded is None:
        raise ValueError(f"model_dir: {model_dir} does not record its data; use the Python API")
    source = dict(recorded)
    if data is not None:
        source["data"] = data
    elif not bundled(source.get("data")):
        raise ValueError(
            f"data: {model_dir} was trained on a file of its user's; pass it with --data FILE "
            "(rnnkit does not open a path that a model folder names)"
        )
    return source
