"""The command line trains the model the Python API does (issue 22): an option that a task's
config, its training or one of its functions also defines takes its default from there
(:class:`~rnnkit.commands._common.TaskDefault`), so the two cannot drift apart.

Three checks: every default the commands name is readable and passes its option's type and
range; independently of those names, every option of a training command that is called like
a field of the task's config or training has the default of a model built in Python with no
options; and ``--help`` prints those values.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import asdict
from typing import Any

import pytest
import typer
from typer.core import TyperGroup, TyperOption
from typer.main import get_command
from typer.testing import CliRunner

from rnnkit.cli import app
from rnnkit.commands._common import TaskDefault, user_errors
from rnnkit.tasks import (
    Captioner,
    CTCRecognizer,
    Forecaster,
    ForecasterConfig,
    Generator,
    Seq2Seq,
    SequenceClassifier,
    SpaceRestorer,
)

ROOT = get_command(app)
#: What each training command trains, as a Python user gets it with every default.
TASKS: dict[str, Callable[[], Any]] = {
    "demo": Forecaster,
    "forecast": Forecaster,
    "classify": SequenceClassifier,
    "tag": lambda: SpaceRestorer().tagger,
    "generate": Generator,
    "caption": Captioner,
    "ctc": CTCRecognizer,
    "seq2seq": Seq2Seq,
}
RENAMED = {"epochs": "max_epochs"}  # option -> TrainConfig field


def commands(group: TyperGroup = ROOT, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Every command of ``group`` and of its subgroups, by its name on the command line."""
    for name, command in group.commands.items():
        if isinstance(command, TyperGroup):
            yield from commands(command, f"{prefix}{name} ")
        else:
            yield f"{prefix}{name}", command


COMMANDS = dict(commands())


def options(command: Any) -> dict[str, TyperOption]:
    return {p.name: p for p in command.params if isinstance(p, TyperOption) and p.name}


def cli_default(command: Any, option: TyperOption) -> Any:
    """The value the option takes when it is not given, as click converts and checks it."""
    context = typer.Context(command)
    return option.process_value(context, option.get_default(context))


def test_the_table_names_every_training_command() -> None:
    training = {name for name, command in COMMANDS.items() if "epochs" in options(command)}
    assert training == set(TASKS)


@pytest.mark.parametrize(
    ("name", "option"),
    [
        (name, option)
        for name, command in COMMANDS.items()
        for option, param in options(command).items()
        if isinstance(param.default, TaskDefault)
    ],
)
def test_every_task_default_a_command_names_is_read_and_valid(name: str, option: str) -> None:
    command = COMMANDS[name]
    param = options(command)[option]
    assert cli_default(command, param) == param.default(), param.default


@pytest.mark.parametrize("name", list(TASKS))
def test_options_named_like_the_tasks_fields_default_to_the_python_apis(name: str) -> None:
    """A literal default written again in a command fails here, whether it differs from the
    task's (a drift) or not yet. A literal None is a command's own choice ("from the data"):
    classify's epochs, forecast's lookback and horizon."""
    model = TASKS[name]()
    fields = {**asdict(model.config), **asdict(model.training)}
    command = COMMANDS[name]
    compared = 0
    for option, param in options(command).items():
        field = RENAMED.get(option, option)
        if field not in fields or param.default is None:
            continue
        assert isinstance(param.default, TaskDefault), (
            f"rnnkit {name} --{option.replace('_', '-')}: a literal default "
            f"{param.default!r}; the task defines it as {field} = {fields[field]!r}"
        )
        assert cli_default(command, param) == fields[field], (name, option)
        compared += 1
    assert compared >= 3, (name, compared)  # seed, devices, num_nodes, strategy at least


@pytest.mark.parametrize(
    ("name", "option", "expected"),
    [
        ("generate", "--epochs", lambda: Generator().training.max_epochs),
        ("generate", "--learning-rate", lambda: Generator().training.learning_rate),
        ("seq2seq", "--epochs", lambda: Seq2Seq().training.max_epochs),
        ("seq2seq", "--batch-size", lambda: Seq2Seq().training.batch_size),
        ("tag", "--hidden-size", lambda: SpaceRestorer().tagger.config.hidden_size),
        ("tag", "--dropout", lambda: SpaceRestorer().tagger.config.dropout),
        ("caption", "--patience", lambda: Captioner().training.patience),
        ("ctc", "--batch-size", lambda: CTCRecognizer().training.batch_size),
        ("forecast", "--stride", lambda: Forecaster().config.stride),
        ("demo", "--epochs", lambda: Forecaster().training.max_epochs),
        ("classify", "--cell", lambda: SequenceClassifier().config.cell),
    ],
)
def test_help_prints_the_python_apis_default(
    name: str, option: str, expected: Callable[[], Any]
) -> None:
    result = CliRunner().invoke(app, [name, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    # an option's row: a "*" if required, its name, type, help and default (maybe wrapped)
    rows = re.split(r"\n│[ *]+(?=--)", result.stdout)
    row = next(r for r in rows if re.match(rf"{option}\s", r))
    shown = re.search(r"\[default: ([^\]]+)\]", row)
    assert shown is not None, row
    value = expected()
    assert type(value)(shown.group(1)) == value, (shown.group(1), value)


def test_a_python_call_gets_the_task_defaults_it_leaves_out() -> None:
    """``demo`` calls ``forecast`` from Python: what it leaves out is what the command line
    would give."""
    given = {}

    @user_errors
    def command(
        data: str, stride: int = TaskDefault("rnnkit.tasks.forecaster:ForecasterConfig", "stride")
    ) -> None:
        given.update(data=data, stride=stride)

    command("electricity")
    assert given == {"data": "electricity", "stride": ForecasterConfig().stride}


def test_building_the_command_line_reads_no_task() -> None:
    """The defaults are read when used: ``rnnkit --help`` and ``rnnkit stream`` stay torch-free."""
    script = (
        "import sys\n"
        "from typer.main import get_command\n"
        "from rnnkit.cli import app\n"
        "get_command(app)\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True)
