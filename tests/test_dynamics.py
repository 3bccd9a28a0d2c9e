"""The adding problem, gradient flow through time, hidden-state figures, the explain
commands and the seed exercise: each checked against a closed form or a baseline."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch
import typer
from typer.testing import CliRunner

from rnnkit.commands import explain
from rnnkit.experiments import BASELINE_MSE, adding_problem, run_adding_experiment
from rnnkit.nn import GRU, LSTM
from rnnkit.viz.dynamics import (
    decay_ratio,
    gradient_flow,
    gradient_norms,
    lstm_gates,
    plot_hidden_states,
)

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def load_example(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------- the adding problem


def test_adding_problem_structure() -> None:
    x, y = adding_problem(length=30, size=500, seed=3)
    assert x.shape == (500, 30, 2) and y.shape == (500,)
    values, markers = x[..., 0], x[..., 1]
    assert ((values >= 0) & (values <= 1)).all()
    assert set(markers.unique().tolist()) == {0.0, 1.0}
    assert (markers[:, :15].sum(1) == 1).all() and (markers[:, 15:].sum(1) == 1).all()
    torch.testing.assert_close(y, (values * markers).sum(1))
    # Seeded, and different seeds give different data.
    torch.testing.assert_close(adding_problem(30, 500, seed=3)[0], x)
    assert not torch.equal(adding_problem(30, 500, seed=4)[0], x)


def test_adding_problem_mean_baseline_matches_the_closed_form() -> None:
    # y = U1 + U2 with U ~ U(0, 1): E[y] = 1 and MSE of predicting 1 = Var(y) = 2/12 = 1/6.
    _, y = adding_problem(length=10, size=200_000, seed=0)
    assert abs(y.mean().item() - 1.0) < 0.005
    mse = (y - 1.0).pow(2).mean().item()
    assert pytest.approx(1 / 6) == BASELINE_MSE
    assert mse == pytest.approx(BASELINE_MSE, abs=0.003)


def test_adding_problem_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match=r"^length: expected an int >= 2, got 1$"):
        adding_problem(1, 4)
    with pytest.raises(TypeError, match=r"^size: expected an int"):
        adding_problem(10, 2.5)  # type: ignore[arg-type]


def test_gated_cell_beats_the_mean_on_short_adding_problem() -> None:
    # A short budget: gate bias 1 learns faster than the long-memory default of 3 at T=20.
    result = run_adding_experiment(
        cells=("gru",), lengths=(20,), hidden_size=16, steps=250, gate_bias=1.0, seed=0
    )
    assert result.mse["gru", 20] < 0.5 * BASELINE_MSE, result.table()
    assert "T=20" in result.table() and "gru" in result.table(), result.table()


@pytest.mark.slow
def test_quality_bar_gated_cells_solve_the_adding_problem_at_200_steps() -> None:
    # About 10 minutes on 2 CPU cores (626 s measured).
    result = run_adding_experiment(lengths=(200,))
    assert result.mse["lstm", 200] < 0.01 and result.mse["gru", 200] < 0.01, result.table()
    assert result.mse["rnn", 200] > 0.8 * BASELINE_MSE, result.table()


# ---------------------------------------------------------------- gradient flow


def test_gradient_norms_shapes_and_positive() -> None:
    norms = gradient_norms(length=12, hidden_size=8, batch_size=4)
    assert set(norms) == {"rnn", "lstm", "gru"}
    for series in norms.values():
        assert series.shape == (12,) and (series > 0).all()


def test_lstm_gradient_decays_slower_than_rnn() -> None:
    ratios: dict[str, list[float]] = {"rnn": [], "lstm": [], "gru": []}
    for seed in range(3):
        norms = gradient_norms(length=40, hidden_size=16, batch_size=8, seed=seed)
        for cell, series in norms.items():
            ratios[cell].append(np.log10(decay_ratio(series)))
    mean = {cell: float(np.mean(values)) for cell, values in ratios.items()}
    assert mean["lstm"] > mean["rnn"] + 2, mean  # 100x more of the gradient reaches t = 0
    assert mean["gru"] > mean["rnn"] + 2, mean


def test_open_memory_gate_is_what_keeps_the_lstm_gradient() -> None:
    open_ = gradient_norms(("lstm",), length=40, hidden_size=16, batch_size=8, gate_bias=1.0)
    shut = gradient_norms(("lstm",), length=40, hidden_size=16, batch_size=8, gate_bias=0.0)
    assert decay_ratio(open_["lstm"]) > 100 * decay_ratio(shut["lstm"])


def test_gradient_flow_figure_is_written(tmp_path: Path) -> None:
    path = gradient_flow(tmp_path / "sub" / "flow.png", length=20, hidden_size=8, batch_size=4)
    assert path.exists() and path.stat().st_size > 10_000
    assert not list(path.parent.glob(".*partial"))


# ---------------------------------------------------------------- hidden states and gates


def test_lstm_gates_reproduce_the_layers_own_states() -> None:
    layer = LSTM(2, 6)
    x = torch.rand(15, 2)
    record = lstm_gates(layer, x)
    output, (_, c_n) = layer(x.unsqueeze(1))  # (L, 1, H)
    np.testing.assert_allclose(record["h"], output[:, 0].detach().numpy(), atol=1e-6)
    np.testing.assert_allclose(record["c"][-1], c_n[0, 0].detach().numpy(), atol=1e-6)
    c_prev = np.vstack([np.zeros((1, 6)), record["c"][:-1]])
    np.testing.assert_allclose(
        record["c"], record["f"] * c_prev + record["i"] * record["g"], atol=1e-6
    )
    np.testing.assert_allclose(record["h"], record["o"] * np.tanh(record["c"]), atol=1e-6)
    for gate in ("i", "f", "o"):
        assert ((record[gate] > 0) & (record[gate] < 1)).all()


def test_lstm_gates_rejects_other_layers_and_bad_shapes() -> None:
    with pytest.raises(TypeError, match=r"^layer: expected an rnnkit.nn.LSTM, got GRU$"):
        lstm_gates(GRU(2, 4), torch.rand(5, 2))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^x: expected shape \(L, H_in\) = \(5, 2\)"):
        lstm_gates(LSTM(2, 4), torch.rand(5, 3))
    with pytest.raises(ValueError, match=r"^x: expected a non-empty sequence"):
        lstm_gates(LSTM(2, 4), torch.rand(0, 2))


@pytest.mark.parametrize("layer", [LSTM(2, 8), GRU(2, 8)], ids=["lstm", "gru"])
def test_hidden_state_figure_is_written(tmp_path: Path, layer: torch.nn.Module) -> None:
    x, _ = adding_problem(30, 1)
    path = plot_hidden_states(tmp_path / "hidden.png", layer, x[0])
    assert path.exists() and path.stat().st_size > 10_000


# ---------------------------------------------------------------- commands and examples


def explain_app() -> typer.Typer:
    app = typer.Typer()
    app.add_typer(explain.app, name="explain")
    return app


def test_explain_vanishing_gradients_command(tmp_path: Path) -> None:
    args = ["explain", "vanishing-gradients", "--out", str(tmp_path), "--length", "20"]
    args += ["--hidden-size", "8"]
    result = CliRunner().invoke(explain_app(), args)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "vanishing_gradients.png").stat().st_size > 10_000
    assert "rnn " in result.output and "lstm " in result.output and "gru " in result.output
    assert 6 <= len(result.output.strip().splitlines()) <= 9


def test_explain_command_reports_bad_arguments_in_one_line() -> None:
    result = CliRunner().invoke(explain_app(), ["explain", "vanishing-gradients", "--length", "1"])
    assert result.exit_code == 2


def test_number_sequence_example_learns_in_range(capsys: pytest.CaptureFixture[str]) -> None:
    results = load_example("number_sequence").main(["--epochs", "150"])
    # The next value of the arithmetic sequence is the exact answer; the mean of the
    # training targets (about 0.55) is the baseline that learnt nothing.
    assert results["in_range_error"] < 0.05, results
    assert results["in_range_error"] < 0.2 * results["mean_error"], results
    printed = capsys.readouterr().out
    assert "0.1, 0.2, 0.3" in printed and "2.0, 2.1, 2.2" in printed
