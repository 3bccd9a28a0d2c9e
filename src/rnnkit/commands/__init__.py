"""Command-line commands, one module per task; :mod:`rnnkit.cli` registers them."""

from rnnkit.commands._common import console, print_error

__all__ = ["console", "print_error"]
