"""What every command shares: the consoles, the one-line error convention and the options'
defaults that the task API defines."""

from __future__ import annotations

import csv
import functools
import importlib
import inspect
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.text import Text

from rnnkit.ranks import launched_as_zero

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
        "--devices",
        min=1,
        help="Training processes on each machine (distributed data parallel on gloo); the "
        "batch size is per process.",
    ),
]
NumNodes = Annotated[
    int,
    typer.Option(
        "--num-nodes",
        min=1,
        help="Machines training together; start the command on each (torchrun, SLURM: see "
        "docs/distributed.md).",
    ),
]
Strategy = Annotated[
    str, typer.Option("--strategy", help="auto (one process; ddp for several) or ddp.")
]


class TaskDefault:
    """An option's default that the task API defines, read from there: ``owner`` names a
    dataclass or an instance of one (``name`` is a field), a dict (a key) or a function (a
    parameter) as ``"module:attribute"``, e.g.
    ``TaskDefault("rnnkit.tasks.generator:Generator.default_training", "max_epochs")``.

    Click calls it for the option's value and ``--help`` prints it: it is read only then,
    for the task modules import torch, which ``rnnkit stream`` and ``rnnkit --help`` do not.
    :class:`TaskDefaults` writes them shorter.
    """

    def __init__(self, owner: str, name: str) -> None:
        self.owner = owner
        self.name = name

    def __call__(self) -> Any:
        module, _, path = self.owner.partition(":")
        owner: Any = importlib.import_module(module)
        for attribute in path.split("."):
            owner = getattr(owner, attribute)
        if isinstance(owner, Mapping):
            return owner[self.name]
        if inspect.isroutine(owner):
            return inspect.signature(owner).parameters[self.name].default
        return getattr(owner, self.name)

    def __str__(self) -> str:  # what --help shows: nothing for None, as for a None default
        value = self()
        return "" if value is None else str(value)

    def __bool__(self) -> bool:  # the help of a --x/--no-x flag names its default's side
        return bool(self())

    def __repr__(self) -> str:
        return f"TaskDefault({self.owner!r}, {self.name!r})"


class TaskDefaults:
    """The defaults of one owner: ``TaskDefaults(owner).name`` is ``TaskDefault(owner, "name")``."""

    def __init__(self, owner: str) -> None:
        self.owner = owner

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):  # not a field: copy, pickle and inspect look for these
            raise AttributeError(name)
        return TaskDefault(self.owner, name)


def further_process() -> bool:
    """Whether this is a process of a distributed run other than global rank 0: after
    training, it leaves the evaluation, the figures and the model folder to rank 0."""
    from rnnkit.train.distributed import is_global_zero

    return not is_global_zero()


def user_errors(command: Command) -> Command:
    """Turn the library's input errors into one readable line on stderr and exit code 2,
    and Ctrl-C into a hint to resume and exit code 130. Called from Python (``demo`` calls
    ``forecast``), the options left out take their :class:`TaskDefault` values, as on the
    command line."""
    signature = inspect.signature(command)

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        given = {
            name: value() if isinstance(value, TaskDefault) else value
            for name, value in bound.arguments.items()
        }
        try:
            return command(**given)
        except (ValueError, TypeError, OSError, RuntimeError, csv.Error) as error:
            # OSError: a file that cannot be read or written (permissions, a folder in its place)
            print_error(str(error))
            raise typer.Exit(2) from None
        except MemoryError:
            print_error("not enough memory for what was asked (a model or its inputs too large)")
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            errors.print(
                "interrupted: the checkpoint of the last finished epoch is kept; run "
                "the same command with --resume to continue"
            )
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
