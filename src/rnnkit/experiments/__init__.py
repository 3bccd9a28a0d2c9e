"""Small experiments that reproduce textbook claims in minutes on a CPU."""

from rnnkit.experiments.adding import (
    BASELINE_MSE,
    AddingResult,
    adding_problem,
    run_adding_experiment,
    set_memory_gate_bias,
    train_adding,
)

__all__ = [
    "BASELINE_MSE",
    "AddingResult",
    "adding_problem",
    "run_adding_experiment",
    "set_memory_gate_bias",
    "train_adding",
]
