"""Numeric sequences through SequenceClassifier and ``rnnkit classify``: defaults planned from
the data, validation fallbacks, a user's validation set, class weights, members averaged,
the convolutional front end, augmentation, and the CLI on .ts files with --test."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from rnnkit.cli import app
from rnnkit.commands.classify import per_class
from rnnkit.tasks import classifier as module
from rnnkit.tasks.classifier import (
    ClassifierConfig,
    ClassifierNetwork,
    SequenceClassifier,
    augment,
    plan_for_sequences,
)
from rnnkit.train import TrainConfig

QUICK = TrainConfig(max_epochs=3, patience=3, batch_size=16, learning_rate=1e-2)


def bumps(count: int, seed: int, classes: int = 2) -> tuple[list[np.ndarray], list[int]]:
    """Noise with a bump whose width is the class (2 or 6 steps), at a random place, in
    sequences of 20-40 steps and 2 channels."""
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for i in range(count):
        label = i % classes
        length = int(rng.integers(20, 41))
        t = np.arange(length)
        centre = rng.uniform(5, length - 5)
        bump = np.exp(-(((t - centre) / (2 + 4 * label)) ** 2))
        xs.append(np.stack([bump, 0.1 * rng.normal(size=length)], axis=1) + 0.05 * rng.normal(
            size=(length, 2)))  # fmt: skip
        ys.append(label)
    return xs, ys


# ------------------------------------------------------------------- plans from the data


def test_plan_for_fifty_examples_of_two_classes() -> None:
    """The issue's case: 50 univariate examples, 2 classes, length 150."""
    plan = plan_for_sequences([0, 1] * 25, [150] * 50)
    assert plan.val_fraction == pytest.approx(0.2)
    assert plan.training.batch_size == 8
    steps = int(np.ceil(40 / 8))
    assert plan.training.max_epochs == int(np.clip(np.ceil(500 / steps), 30, 150)) == 100
    assert plan.training.patience == 33
    assert plan.options == {"front_end": "conv", "stride": 3, "augment": "jitter+scaling+slicing",
                            "members": 3, "blend": "rocket"}  # fmt: skip
    assert plan.class_weights is False


def test_plan_for_ten_classes_of_five_holds_one_of_each_out() -> None:
    """The issue's failing case: 10 classes x 5 examples. 10 % would hold 5 out, fewer than
    the classes; the plan holds out one per class."""
    labels = list(range(10)) * 5
    plan = plan_for_sequences(labels, [100] * 50)
    assert plan.val_fraction == pytest.approx(10 / 50)
    held = module.split_indices(labels, plan.val_fraction, 0)[1]
    assert sorted(labels[i] for i in held) == list(range(10))


def test_plan_falls_back_to_no_validation_when_a_class_is_single() -> None:
    plan = plan_for_sequences([0] * 20 + [1], [30] * 21)
    assert plan.val_fraction is None
    assert any("none held out" in note for note in plan.notes)
    assert plan.class_weights is True  # 20 against 1


def test_plan_for_large_data() -> None:
    labels = [i % 5 for i in range(50_000)]
    plan = plan_for_sequences(labels, [400] * 50_000)
    assert plan.val_fraction == pytest.approx(0.1)
    assert plan.training.batch_size == 64 and plan.training.max_epochs == 30
    assert plan.options["members"] == 1 and plan.options["augment"] == "none"
    assert plan.options["stride"] == 7  # ceil(400 / 64)


# ------------------------------------------------------------------- fitting


def test_no_validation_runs_every_epoch_and_keeps_the_lowest_training_loss() -> None:
    x, y = bumps(24, seed=0)
    model = SequenceClassifier(hidden_size=8, training=QUICK)
    history = model.fit(x, y, val_fraction=None, progress=False)
    assert len(history.train_loss) == len(history.val_loss) == QUICK.max_epochs
    assert history.best_epoch == int(np.argmin(history.val_loss))


def test_a_users_validation_set_is_what_early_stopping_reads() -> None:
    """The recorded validation loss of the restored epoch is the model's loss on the given
    validation set, recomputed here."""
    x, y = bumps(40, seed=1)
    vx, vy = bumps(12, seed=2)
    model = SequenceClassifier(hidden_size=8, dropout=0.0, training=QUICK)
    history = model.fit(x, y, validation=(vx, vy), progress=False)
    probabilities = model.predict_proba(vx)
    truth = np.array([model.classes.index(v) for v in vy])
    loss = -np.log(probabilities[np.arange(len(vy)), truth]).mean()
    assert history.val_loss[history.best_epoch] == pytest.approx(loss, rel=1e-4)


def test_class_weights_are_balanced(monkeypatch: pytest.MonkeyPatch) -> None:
    """The loss fit trains with is scikit-learn's "balanced" weighting: N / (C * count)."""
    captured = {}

    def fake_train(network, loss_fn, train_set, *args, **kwargs):
        captured["loss"], captured["network"] = loss_fn, network
        return module.History()

    monkeypatch.setattr(module, "train", fake_train)
    x, y = bumps(40, seed=3)
    y = [0] * 30 + [1] * 10
    SequenceClassifier(hidden_size=8).fit(x, y, val_fraction=None, class_weights=True,
                                          progress=False)  # fmt: skip
    inputs, lengths, targets = module._collate([(torch.randn(5, 2), t) for t in (0, 1, 1)])
    captured["network"].eval()  # no dropout: the same logits twice
    logits = captured["network"](inputs, lengths)
    weights = torch.tensor([40 / (2 * 30), 40 / (2 * 10)])
    picked = -torch.log_softmax(logits, -1)[torch.arange(3), targets] * weights[targets]
    expected = picked.sum() / weights[targets].sum()
    torch.testing.assert_close(captured["loss"](captured["network"], (inputs, lengths, targets)),
                               expected)  # fmt: skip


def test_members_average_probabilities_and_survive_save_load(tmp_path: Path) -> None:
    x, y = bumps(30, seed=4)
    model = SequenceClassifier(hidden_size=8, members=2, front_end="conv", conv_channels=4,
                               stride=2, training=QUICK)  # fmt: skip
    model.fit(x, y, val_fraction=0.2, progress=False)
    members = model.network.members
    single = SequenceClassifier(hidden_size=8, front_end="conv", conv_channels=4, stride=2)
    single._fitted = model._fitted
    each = []
    for member in members:
        single.network = member
        each.append(single.predict_proba(x[:5]))
    np.testing.assert_allclose(model.predict_proba(x[:5]), np.mean(each, axis=0), atol=1e-6)
    loaded = SequenceClassifier.load(model.save(tmp_path / "m"))
    np.testing.assert_allclose(loaded.predict_proba(x[:5]), model.predict_proba(x[:5]), atol=1e-6)


@pytest.mark.parametrize("options", [{"front_end": "conv"}, {"stride": 3},
                                     {"front_end": "conv", "stride": 4}])  # fmt: skip
def test_front_end_and_stride_ignore_padding(options: dict) -> None:
    config = ClassifierConfig(hidden_size=6, conv_channels=5, **options)
    network = ClassifierNetwork(3, 4, config).eval()
    lengths = torch.tensor([11, 2, 7])
    batch = torch.randn(3, 11, 3)  # garbage past each length
    with torch.no_grad():
        together = network(batch, lengths)
        alone = torch.cat([network(batch[i : i + 1, :n], lengths[i : i + 1])
                           for i, n in enumerate(lengths.tolist())])  # fmt: skip
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=1e-5)


def test_augmentation_keeps_padding_zero_and_slices_ninety_percent() -> None:
    torch.manual_seed(0)
    lengths = torch.tensor([10, 4, 1])
    x = torch.zeros(3, 10, 2)
    for i, n in enumerate(lengths.tolist()):
        x[i, :n] = torch.arange(1, n + 1, dtype=torch.float32).unsqueeze(1)
    sliced, new = augment(x, lengths, ["slicing"])
    assert new.tolist() == [9, 4, 1]
    first = sliced[0, :9, 0]
    assert first.tolist() in ([float(v) for v in range(1, 10)], [float(v) for v in range(2, 11)])
    noisy, same = augment(x, lengths, ["jitter", "scaling"])
    assert same.tolist() == lengths.tolist()
    assert (noisy[1, 4:] == 0).all() and (noisy[2, 1:] == 0).all()
    assert not torch.equal(noisy[0], x[0])


def test_augmentation_only_in_training() -> None:
    network = ClassifierNetwork(2, 2, ClassifierConfig(hidden_size=4, augment="jitter")).eval()
    x, lengths = torch.randn(2, 6, 2), torch.tensor([6, 6])
    torch.testing.assert_close(network(x, lengths), network(x, lengths))


def test_bad_options_are_clear_errors() -> None:
    with pytest.raises(ValueError, match=r"^augment: expected 'none' or a '\+'-joined choice"):
        SequenceClassifier(augment="flip")
    with pytest.raises(ValueError, match=r"^front_end: expected one of 'none', 'conv'"):
        SequenceClassifier(front_end="fcn")
    x, _ = bumps(50, seed=0)
    with pytest.raises(ValueError, match=r"^val_fraction: cannot split 50 examples by class: .*"
                       r"; pass val_fraction=None to hold nothing out"):  # fmt: skip
        SequenceClassifier().fit(x, list(range(10)) * 5, progress=False)
    with pytest.raises(ValueError, match=r"^resume: expected a model with members = 1, got 2"):
        SequenceClassifier(members=2).fit(*bumps(10, 0), resume=True, progress=False)


def test_per_class_precision_and_recall() -> None:
    matrix = np.array([[5, 1, 0], [2, 6, 0], [0, 0, 0]])
    rows = per_class(matrix, ("a", "b", "c"))
    assert rows[0] == {"class": "a", "support": 6, "precision": 5 / 7, "recall": 5 / 6}
    assert rows[1]["precision"] == 6 / 7 and rows[1]["recall"] == 6 / 8
    assert rows[2] == {"class": "c", "support": 0, "precision": 0.0, "recall": 0.0}


# ------------------------------------------------------------------- the command line


def write_ts(path: Path, xs: list[np.ndarray], ys: list[int]) -> Path:
    lines = ["@problemName bumps", "@univariate false", "@dimensions 2",
             "@classLabel true 0 1", "@data"]  # fmt: skip
    for x, y in zip(xs, ys, strict=True):
        channels = [",".join(f"{v:.5f}" for v in x[:, j]) for j in range(x.shape[1])]
        lines.append(":".join(channels) + f":{y}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_cli_trains_on_a_ts_file_with_a_test_file(tmp_path: Path) -> None:
    train = write_ts(tmp_path / "B_TRAIN.ts", *bumps(40, seed=5))
    test = write_ts(tmp_path / "B_TEST.ts", *bumps(30, seed=6))
    out = tmp_path / "run"
    args = ["classify", "--data", str(train), "--test", str(test), "--epochs", "4",
            "--hidden-size", "8", "--members", "1", "--out", str(out), "--no-progress"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    output = " ".join(result.output.split())  # rich wraps lines at the terminal's width
    for text in ("Plan: validation: 8 of 40 examples held out", "1-NN DTW", "ROCKET",
                 "majority class", "Per class", "40 examples for training and validation, "
                 "30 for testing", "B_TEST.ts: 30 test examples"):  # fmt: skip
        assert text in output
    report = json.loads((out / "report.json").read_text())
    assert set(report["methods"]) == {"rnnkit gru", "rnnkit gru, network only",
                                      "majority class", "1-NN DTW", "ROCKET"}  # fmt: skip
    assert report["methods"]["majority class"]["accuracy"] == 0.5
    model = SequenceClassifier.load(out / "model")
    from rnnkit.data.sequences import read_sequences

    held = read_sequences(test)
    evaluation = model.evaluate(held.sequences, held.labels)
    assert report["methods"]["rnnkit gru"]["accuracy"] == evaluation["accuracy"]
    network = model.evaluate(held.sequences, held.labels, blend=False)["accuracy"]
    assert report["methods"]["rnnkit gru, network only"]["accuracy"] == network
    assert report["blend"] == model.blend and model.config.blend == "rocket"
    assert f"Blend: ROCKET's share {model.blend['weight']:.1f}, chosen on 8 validation" in output
    assert report["confusion_matrix"] == evaluation["confusion_matrix"].tolist()
    assert (out / "confusion.png").read_bytes().startswith(b"\x89PNG")
    assert model.config.members == 1 and model.config.front_end == "conv"
    # `rnnkit predict` on the test file gives the model's predictions
    predicted = CliRunner().invoke(app, ["predict", str(out / "model"), str(test)])
    assert predicted.exit_code == 0, predicted.output
    rows = [json.loads(line) for line in predicted.stdout.splitlines()]
    assert [r["label"] for r in rows] == model.predict(held.sequences).tolist()
    # `rnnkit evaluate` on the test file gives the same accuracy
    again = CliRunner().invoke(app, ["evaluate", str(out / "model"), "--data", str(test)])
    assert again.exit_code == 0, again.output
    assert f"{evaluation['accuracy']:.3f}" in again.output


def test_cli_blend_none_reports_the_network_alone(tmp_path: Path) -> None:
    train = write_ts(tmp_path / "B_TRAIN.ts", *bumps(24, seed=7))
    out = tmp_path / "run"
    args = ["classify", "--data", str(train), "--epochs", "2", "--hidden-size", "4",
            "--members", "1", "--blend", "none", "--no-baselines", "--out", str(out),
            "--no-progress"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert set(report["methods"]) == {"rnnkit gru", "majority class"}
    assert report["blend"] is None
    bad = CliRunner().invoke(app, [*args[:-3], "--blend", "ridge", "--no-progress"])
    assert bad.exit_code == 2
    assert bad.output.strip() == "error: blend: expected one of 'none', 'rocket', got 'ridge'"


def test_cli_bad_sequence_file_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.ts"
    path.write_text("@data\n1,2:3,4:a\n1,2:b\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["classify", "--data", str(path), "--no-progress"])
    assert result.exit_code == 2
    assert result.output.strip() == (
        "error: data: bad.ts line 3: expected 2 channels, got 1 (mixed channel counts)"
    )


# ------------------------------------------------------------------- quality


@pytest.mark.slow
def test_gunpoint_defaults_beat_dtw_and_are_far_from_chance() -> None:
    """The issue's case: GunPoint's 50 training series stopped at chance (0.49) with the old
    defaults. The planned defaults must beat the UCR archive's 1-NN DTW (0.913)."""
    from rnnkit.data import dataset_path
    from rnnkit.data.sequences import read_sequences

    folder = dataset_path("sentiment").parent
    train = read_sequences(folder / "GunPoint_TRAIN.ts.gz")
    test = read_sequences(folder / "GunPoint_TEST.ts.gz")
    plan = plan_for_sequences(train.labels, train.lengths, seed=0)
    model = plan.model()
    model.fit(train.sequences, train.labels, val_fraction=plan.val_fraction, progress=False)
    accuracy = model.evaluate(test.sequences, test.labels)["accuracy"]
    print(f"GunPoint, planned defaults: test accuracy {accuracy:.3f}")
    assert accuracy > 0.913
