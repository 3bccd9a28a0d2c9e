"""The ``rnnkit`` command line (typer + rich).

Errors in what the user gave (a missing file, an unknown column, a corrupt model directory)
print one line on stderr and exit with code 2, never a traceback.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.table import Table

import rnnkit
from rnnkit.commands import (
    classify,
    console,
    deploy,
    explain,
    forecast,
    generate,
    models,
    print_error,
    seq2seq,
    tag,
    vision,
)

try:  # newer typer carries its own click
    from typer import TyperException as UsageError
except ImportError:  # older typer runs on click
    from click import ClickException as UsageError

Option = typer.Option

app = typer.Typer(
    help="rnnkit: recurrent neural networks on PyTorch, from the textbook to a deployed model.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _show_version(value: bool) -> None:
    if value:
        console.print(f"rnnkit {rnnkit.__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        Option(
            "--version", help="Print the version and exit.", callback=_show_version, is_eager=True
        ),
    ] = False,
) -> None:
    """rnnkit: recurrent neural networks on PyTorch."""


@app.command()
def datasets() -> None:
    """List the bundled real datasets (sources and licences: DATA.md)."""
    from rnnkit.data import DATASETS, dataset_path

    table = Table(title="Bundled datasets")
    for column in ("name", "kind", "description", "file"):
        table.add_column(column)
    for d in DATASETS.values():
        table.add_row(d.name, d.kind, d.description, dataset_path(d.name).name)
    console.print(table)


app.command("demo")(forecast.demo)
app.command("forecast")(forecast.command)
app.command("predict")(models.predict)
app.command("evaluate")(models.evaluate)
app.command("classify")(classify.command)
app.command("tag")(tag.command)
app.command("generate")(generate.command)
app.command("export")(deploy.export)
app.command("stream")(deploy.stream)
app.command("caption")(vision.caption)
app.command("ctc")(vision.ctc)
app.command("seq2seq")(seq2seq.command)
app.add_typer(explain.app, name="explain")


def run() -> None:
    """The ``rnnkit`` command: ``app``, with a usage error (an unknown option, a value out of
    its range) printed in one line like every other error, not in a box."""
    try:
        code = app(standalone_mode=False)
    except UsageError as error:
        print_error(error.format_message())
        sys.exit(error.exit_code)
    except typer.Abort:  # Ctrl-C or end of input at a prompt
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    run()
