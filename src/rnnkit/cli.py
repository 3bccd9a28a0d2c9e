"""The ``rnnkit`` command line (typer + rich)."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

import rnnkit

app = typer.Typer(
    help="rnnkit: recurrent neural networks on PyTorch, from the textbook to a deployed model.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console()


def _show_version(value: bool) -> None:
    if value:
        console.print(f"rnnkit {rnnkit.__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(
        False,
        "--version",
        help="Print the version and exit.",
        callback=_show_version,
        is_eager=True,
    ),
) -> None:
    """rnnkit: recurrent neural networks on PyTorch."""


@app.command()
def demo(
    epochs: int = typer.Option(300, min=1, help="Full-batch training steps."),
    seed: int = typer.Option(0, help="Random seed."),
) -> None:
    """Seed exercise 1: an rnnkit LSTM learns 0.1, 0.2, 0.3 -> 0.4."""
    from rnnkit.exercises import number_sequence

    result = number_sequence(epochs=epochs, seed=seed)
    table = Table(title=f"LSTM, 3 steps -> next (train MSE {result.final_loss:.2e})")
    for column in ("input", "expected", "predicted", "error"):
        table.add_column(column, justify="right")
    for query, predicted in result.predictions.items():
        expected = round(query[-1] + 0.1, 10)
        table.add_row(
            ", ".join(f"{v:g}" for v in query), f"{expected:g}", f"{predicted:.4f}",
            f"{predicted - expected:+.4f}",
        )  # fmt: skip
    console.print(table)


if __name__ == "__main__":
    app()
