"""What every command shares: the consoles and the one-line error convention."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

console = Console()
errors = Console(stderr=True)
Command = TypeVar("Command", bound=Callable[..., Any])
Resume = Annotated[
    bool,
    typer.Option("--resume", help="Continue an interrupted run from its checkpoint in OUT/logs."),
]


def user_errors(command: Command) -> Command:
    """Turn the library's input errors into one readable line on stderr and exit code 2,
    and Ctrl-C into a hint to resume and exit code 130."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except (ValueError, TypeError, FileNotFoundError, RuntimeError) as error:
            errors.print(f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            errors.print("interrupted: the checkpoint of the last finished epoch is kept; run "
                         "the same command with --resume to continue")  # fmt: skip
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]
