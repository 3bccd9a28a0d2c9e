"""A sequence classifier's probabilities blended with ROCKET's, the weight chosen on validation.

ROCKET (Dempster, Petitjean & Webb 2020; :mod:`rnnkit.sequence_baselines`) is the strongest
simple classifier of small time-series sets, and its errors are not the network's. The
blend mixes the two class distributions,

    p = (1 - weight) * p_network + weight * softmax(ridge scores / temperature),

both fitted on the training split only:

* each member of the network was trained on its own part of the training split and predicts
  its held-out part (or the user's validation set); a ridge on the ROCKET features of the
  same part predicts the same examples, so both are judged on examples neither has seen;
* ``temperature`` turns ridge scores into probabilities: the value of :data:`TEMPERATURES`
  with the lowest log-loss on those examples (temperature scaling, Guo et al. 2017);
* ``weight`` is the value of :data:`WEIGHTS` with the best accuracy on them, ties broken by
  the lower log-loss, then the smaller weight (0: the network alone, 1: ROCKET alone);
* the final ridge is fitted on every training example.

Everything is deterministic given the seeds, so the same data and seed choose the same weight.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from rnnkit.sequence_baselines import rocket_features, rocket_kernels, rocket_ridge

BLENDS = ("none", "rocket")
#: Blend weights tried on validation (the share of ROCKET's probabilities).
WEIGHTS = tuple(i / 10 for i in range(11))
#: Temperatures tried for ROCKET's ridge scores (targets are -1 / +1, so scores are near 1).
TEMPERATURES = tuple(float(t) for t in np.logspace(-2, 1, 31))


@dataclass(frozen=True)
class Fold:
    """One validation part: the network's probabilities ``(V, C)`` on ``inputs`` (``V``
    float tensors ``(L_i, F)``) with classes ``targets`` ``(V,)``, predicted by a network
    trained on the training ``rows`` ``(M,)``."""

    rows: np.ndarray
    inputs: list[Tensor]
    targets: np.ndarray
    probabilities: np.ndarray


class RocketBlend(nn.Module):
    """``network``'s class probabilities blended with ROCKET's: features ``(N, L, F)`` and
    lengths ``(N,)`` -> the log of the blended probabilities ``(N, C)`` (the network's
    logits when ``weight`` is 0).

    The kernels are drawn again from the buffers ``kernel_length`` and ``kernel_seed``
    (:func:`rocket_kernels`), so the file holds only the ridge's standardisation and
    coefficients, ``weight`` and ``temperature``. With ``weight`` 0 ROCKET is not run.
    """

    def __init__(
        self, network: nn.Module, num_kernels: int, num_features: int, num_classes: int
    ) -> None:
        super().__init__()
        self.network = network
        self.num_kernels, self.num_features = num_kernels, num_features
        outputs = 1 if num_classes == 2 else num_classes  # a binary ridge has one score
        double = torch.float64
        self.register_buffer("kernel_length", torch.ones((), dtype=torch.int64))
        self.register_buffer("kernel_seed", torch.zeros((), dtype=torch.int64))
        self.register_buffer("feature_mean", torch.zeros(2 * num_kernels, dtype=double))
        self.register_buffer("feature_scale", torch.ones(2 * num_kernels, dtype=double))
        self.register_buffer("coef", torch.zeros(outputs, 2 * num_kernels, dtype=double))
        self.register_buffer("intercept", torch.zeros(outputs, dtype=double))
        self.register_buffer("weight", torch.zeros((), dtype=double))
        self.register_buffer("temperature", torch.ones((), dtype=double))
        self._kernels: tuple[tuple[int, int], dict[str, np.ndarray]] | None = None

    def kernels(self) -> dict[str, np.ndarray]:
        """ROCKET's kernels for the buffers' length and seed (drawn once, then kept)."""
        key = (int(self.kernel_length), int(self.kernel_seed))
        if self._kernels is None or self._kernels[0] != key:
            drawn = rocket_kernels(self.num_kernels, key[0], self.num_features, key[1])
            self._kernels = key, drawn
        return self._kernels[1]

    def rocket_probabilities(self, x: Tensor, lengths: Tensor) -> np.ndarray:
        """ROCKET's probabilities ``(N, C)`` for padded ``x`` ``(N, L, F)``."""
        sequences = [x[i, : int(n)].double().numpy() for i, n in enumerate(lengths)]
        features = rocket_features(sequences, self.kernels())  # (N, 2K)
        scaled = (features - self.feature_mean.numpy()) / self.feature_scale.numpy()
        scores = scaled @ self.coef.numpy().T + self.intercept.numpy()  # (N, 1 or C)
        return _softmax(_two_columns(scores), float(self.temperature))

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        logits = self.network(x, lengths)  # (N, C)
        weight = float(self.weight)
        if weight == 0:
            return logits
        network = torch.softmax(logits, -1).double()
        rocket = torch.from_numpy(self.rocket_probabilities(x, lengths))
        return ((1 - weight) * network + weight * rocket).log().to(x.dtype)  # (N, C)


def fit_blend(
    blend: RocketBlend, inputs: list[Tensor], targets: np.ndarray, folds: list[Fold], seed: int
) -> dict[str, Any]:
    """Choose ``blend``'s temperature and weight on ``folds`` and fit its ridge on every
    training example (``inputs``: ``N`` float tensors ``(L_i, F)``, ``targets`` ``(N,)``
    class indices); returns what was chosen and the validation accuracies. Without folds
    (nothing held out) the weight stays 0: the network alone."""
    lengths = [len(x) for x in inputs]
    blend.kernel_length.fill_(int(np.median(lengths)))
    blend.kernel_seed.fill_(seed)
    if not folds:
        return {"weight": 0.0, "temperature": 1.0, "validation_examples": 0}
    num_classes = folds[0].probabilities.shape[1]
    kernels = blend.kernels()
    features = rocket_features([x.double().numpy() for x in inputs], kernels)  # (N, 2K)
    scores, probabilities, truth = [], [], []
    for fold in folds:
        ridge = rocket_ridge(features[fold.rows], targets[fold.rows])
        held = rocket_features([x.double().numpy() for x in fold.inputs], kernels)
        scores.append(_class_scores(ridge, held, num_classes))
        probabilities.append(fold.probabilities)
        truth.append(fold.targets)
    rocket_scores, network, classes = (np.concatenate(a) for a in (scores, probabilities, truth))
    temperature = min(TEMPERATURES, key=lambda t: _log_loss(_softmax(rocket_scores, t), classes))
    rocket = _softmax(rocket_scores, temperature)

    def judged(weight: float) -> tuple[float, float, float]:
        mixed = (1 - weight) * network + weight * rocket
        return -_accuracy(mixed, classes), _log_loss(mixed, classes), weight

    weight = min(WEIGHTS, key=judged)
    ridge = rocket_ridge(features, targets)
    if list(ridge[-1].classes_) != list(range(num_classes)):
        raise ValueError(f"labels: expected every class among the {len(targets)} examples")
    scaler, classifier = ridge[0], ridge[-1]
    blend.feature_mean.copy_(torch.from_numpy(scaler.mean_))
    blend.feature_scale.copy_(torch.from_numpy(scaler.scale_))
    blend.coef.copy_(torch.from_numpy(np.atleast_2d(classifier.coef_)))
    blend.intercept.copy_(torch.from_numpy(np.atleast_1d(classifier.intercept_)))
    blend.weight.fill_(weight)
    blend.temperature.fill_(temperature)
    mixed = (1 - weight) * network + weight * rocket
    return {
        "weight": weight,
        "temperature": temperature,
        "validation_examples": len(classes),
        "validation_accuracy": {
            "network": _accuracy(network, classes),
            "ROCKET": _accuracy(rocket, classes),
            "blend": _accuracy(mixed, classes),
        },
    }


def _class_scores(ridge: Any, features: np.ndarray, num_classes: int) -> np.ndarray:
    """A fitted ROCKET ridge's scores ``(V, C)`` (a class it never saw scores -inf)."""
    scores = _two_columns(np.atleast_1d(ridge.decision_function(features)))
    out = np.full((len(features), num_classes), -np.inf)
    out[:, ridge[-1].classes_] = scores
    return out


def _two_columns(scores: np.ndarray) -> np.ndarray:
    """A binary ridge's one score ``(N,)`` or ``(N, 1)`` as ``(N, 2)``; others unchanged."""
    if scores.ndim == 1 or scores.shape[1] == 1:
        score = scores.reshape(-1)
        return np.stack([-score, score], 1)
    return scores


def _softmax(scores: np.ndarray, temperature: float) -> np.ndarray:
    z = scores / temperature
    z = np.exp(z - z.max(1, keepdims=True))
    return z / z.sum(1, keepdims=True)


def _log_loss(probabilities: np.ndarray, classes: np.ndarray) -> float:
    picked = probabilities[np.arange(len(classes)), classes]
    return float(-np.mean(np.log(np.clip(picked, 1e-12, None))))


def _accuracy(probabilities: np.ndarray, classes: np.ndarray) -> float:
    return float(np.mean(probabilities.argmax(1) == classes))
