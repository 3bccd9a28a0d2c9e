"""Command-line commands, one module per task; :mod:`rnnkit.cli` registers them."""
