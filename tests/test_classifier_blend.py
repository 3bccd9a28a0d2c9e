"""The ROCKET blend of SequenceClassifier: the weight and temperature chosen on validation
only, checked against a brute-force search written here with scikit-learn and SciPy; the
network alone still reachable; save -> load keeps both."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.special import softmax
from sklearn.linear_model import RidgeClassifierCV
from sklearn.metrics import log_loss
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from test_classify_sequences import QUICK, bumps

from rnnkit.sequence_baselines import rocket_features, rocket_kernels
from rnnkit.tasks.classifier import SequenceClassifier, plan_for_sequences
from rnnkit.tasks.classifier_blend import TEMPERATURES, WEIGHTS, Fold, RocketBlend, fit_blend
from rnnkit.train import TrainConfig

KERNELS = 100


def ridge(features: np.ndarray, targets: np.ndarray) -> object:
    """ROCKET's classifier as the paper's code builds it, independently of rnnkit's."""
    model = make_pipeline(StandardScaler(), RidgeClassifierCV(alphas=np.logspace(-3, 3, 10)))
    return model.fit(features, targets)


def scores(model: object, features: np.ndarray) -> np.ndarray:
    d = model.decision_function(features)
    return np.stack([-d, d], 1) if d.ndim == 1 else d


class Fixed(torch.nn.Module):
    """A stand-in network: the same logits ``(N, C)`` whatever it reads."""

    def __init__(self, logits: np.ndarray) -> None:
        super().__init__()
        self.logits = torch.tensor(logits)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.logits


def test_fit_blend_matches_a_brute_force_search() -> None:
    rng = np.random.default_rng(0)
    x, y = bumps(40, seed=1)
    inputs = [torch.tensor(a, dtype=torch.float32) for a in x]
    targets = np.array(y)
    folds = []
    for member in range(2):  # two parts held out, the network's guesses on them made up
        held = np.arange(member, 40, 4)
        rows = np.setdiff1d(np.arange(40), held)
        guess = softmax(rng.normal(size=(len(held), 2)) + 1.5 * np.eye(2)[targets[held]], 1)
        folds.append(Fold(rows, [inputs[i] for i in held], targets[held], guess))
    blend = RocketBlend(torch.nn.Identity(), KERNELS, 2, 2)
    chosen = fit_blend(blend, inputs, targets, folds, seed=3)

    kernels = rocket_kernels(KERNELS, int(np.median([len(a) for a in x])), 2, 3)
    features = rocket_features([i.double().numpy() for i in inputs], kernels)
    rocket = np.concatenate([scores(ridge(features[f.rows], targets[f.rows]),
                                    features[np.isin(np.arange(40), f.rows, invert=True)])
                             for f in folds])  # fmt: skip
    network = np.concatenate([f.probabilities for f in folds])
    truth = np.concatenate([f.targets for f in folds])
    losses = [log_loss(truth, softmax(rocket / t, 1), labels=[0, 1]) for t in TEMPERATURES]
    temperature = TEMPERATURES[int(np.argmin(losses))]
    p_rocket = softmax(rocket / temperature, 1)
    results = []
    for w in WEIGHTS:
        mixed = (1 - w) * network + w * p_rocket
        results.append((-np.mean(mixed.argmax(1) == truth), log_loss(truth, mixed), w))
    weight = min(results)[2]
    assert chosen["temperature"] == pytest.approx(temperature)
    assert chosen["weight"] == weight
    assert chosen["validation_examples"] == 20
    assert chosen["validation_accuracy"]["network"] == np.mean(network.argmax(1) == truth)

    # the blend's forward: the final ridge (all 40 examples) at the chosen temperature
    final = ridge(features, targets)
    padded = torch.nn.utils.rnn.pad_sequence(inputs[:6], batch_first=True)
    lengths = torch.tensor([len(i) for i in inputs[:6]])
    given = softmax(rng.normal(size=(6, 2)), 1)
    blend.network = Fixed(np.log(given))
    expected = (1 - weight) * given + weight * softmax(scores(final, features[:6]) / temperature, 1)
    np.testing.assert_allclose(blend(padded.double(), lengths).exp(), expected, atol=1e-8)


def test_the_blend_is_reproducible_the_network_alone_remains_and_both_survive_save_load(
    tmp_path: Path,
) -> None:
    x, y = bumps(40, seed=2)
    test_x, test_y = bumps(20, seed=3)

    def fitted() -> SequenceClassifier:
        model = SequenceClassifier(hidden_size=8, members=2, blend="rocket",
                                   rocket_kernels=KERNELS, training=QUICK)  # fmt: skip
        model.fit(x, y, val_fraction=0.25, progress=False)
        return model

    model, again = fitted(), fitted()
    assert model.blend == again.blend
    assert model.blend["validation_examples"] == 20  # two members, 10 held out each
    np.testing.assert_allclose(model.predict_proba(test_x), again.predict_proba(test_x))

    alone = SequenceClassifier(hidden_size=8, members=2, training=QUICK)
    alone.fit(x, y, val_fraction=0.25, progress=False)  # the same seeds and splits, no blend
    np.testing.assert_allclose(model.predict_proba(test_x, blend=False),
                               alone.predict_proba(test_x), atol=1e-6)  # fmt: skip
    assert alone.blend is None
    network_only = model.evaluate(test_x, test_y, blend=False)["accuracy"]
    assert network_only == alone.evaluate(test_x, test_y)["accuracy"]

    loaded = SequenceClassifier.load(model.save(tmp_path / "m"))
    assert loaded.blend == model.blend
    for blend in (True, False):
        np.testing.assert_allclose(loaded.predict_proba(test_x, blend),
                                   model.predict_proba(test_x, blend), atol=1e-6)  # fmt: skip


def test_without_validation_examples_the_blend_is_the_network() -> None:
    x, y = bumps(24, seed=4)
    model = SequenceClassifier(hidden_size=8, blend="rocket", rocket_kernels=KERNELS,
                               training=TrainConfig(max_epochs=2, batch_size=8))  # fmt: skip
    model.fit(x, y, val_fraction=None, progress=False)
    assert model.blend == {"weight": 0.0, "temperature": 1.0, "validation_examples": 0}
    np.testing.assert_array_equal(model.predict_proba(x), model.predict_proba(x, blend=False))


def test_plan_blends_small_data_and_not_large() -> None:
    small = plan_for_sequences([0, 1] * 25, [150] * 50)
    assert small.options["blend"] == "rocket"
    assert any("weight chosen on validation" in note for note in small.notes)
    large = plan_for_sequences([i % 5 for i in range(50_000)], [400] * 50_000)
    assert large.options["blend"] == "none"
    assert any(note.startswith("blend: none (ROCKET's features") for note in large.notes)
    single = plan_for_sequences([0] * 20 + [1], [30] * 21)
    assert any("no validation examples to weigh it" in note for note in single.notes)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: SequenceClassifier(blend="ridge"), r"^blend: expected one of"),
        (lambda: SequenceClassifier(rocket_kernels=0), r"^rocket_kernels: expected"),
        (lambda: SequenceClassifier(blend="rocket").fit(["a b", "c d"], [0, 1]),
         r"^blend: 'rocket' needs numeric sequences"),
    ],
)  # fmt: skip
def test_bad_blend_options_name_the_argument(make: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()  # type: ignore[operator]


def test_blend_flag_must_be_a_bool() -> None:
    x, y = bumps(12, seed=5)
    model = SequenceClassifier(hidden_size=4, training=TrainConfig(max_epochs=1, batch_size=8))
    model.fit(x, y, val_fraction=None, progress=False)
    with pytest.raises(TypeError, match=r"^blend: expected a bool"):
        model.predict(x, blend="no")  # type: ignore[arg-type]


def test_a_blended_classifier_does_not_export_silently(tmp_path: Path) -> None:
    """ROCKET's features run in NumPy: neither exporter can carry them, so both refuse."""
    from rnnkit.export import export_onnx, export_runtime

    x, y = bumps(12, seed=6)
    model = SequenceClassifier(hidden_size=4, blend="rocket", rocket_kernels=KERNELS,
                               training=TrainConfig(max_epochs=1, batch_size=8))  # fmt: skip
    model.fit(x, y, val_fraction=None, progress=False)
    with pytest.raises(ValueError, match=r"^source: a classifier blended with ROCKET"):
        export_onnx(model, tmp_path / "m.onnx")
    with pytest.raises(ValueError, match=r"^model: the runtime runs one classifier network"):
        export_runtime(model, tmp_path / "m.rnnkit")
