"""The baselines every sequence classification is compared with: 1-NN DTW and ROCKET.

Both are the standard references of time-series classification (Bagnall et al. 2017,
Dau et al. 2019; Dempster et al. 2020), written here in NumPy + numba because no maintained
implementation installs beside rnnkit's pinned dependencies without adding a framework
(sktime, aeon) to every install. Both take what :meth:`SequenceClassifier.fit` takes: a list
of ``(L_i, F)`` arrays (or an ``(N, L, F)`` array), of any lengths and channel counts.

* :class:`NearestNeighbourDTW`: 1-nearest neighbour under dynamic time warping with a
  Sakoe-Chiba band, dependent over channels (DTW_D: the squared Euclidean distance between
  the ``F``-vectors of two steps, Shokoohi-Yekta et al. 2017). The band is learned by
  leave-one-out accuracy on the training set over a small grid (the UCR archive's "DTW,
  learned window"), or fixed.
* :class:`RocketClassifier`: ROCKET (Dempster, Petitjean & Webb 2020, "ROCKET: exceptionally
  fast and accurate time series classification using random convolutional kernels", Data
  Mining and Knowledge Discovery 34): 10,000 random dilated kernels, each giving the
  proportion of positive values (PPV) and the maximum of its convolution, then a ridge
  classifier with its penalty chosen by leave-one-out (``RidgeClassifierCV``). Multivariate
  inputs use the paper's authors' multivariate variant: each kernel reads a random subset of
  channels. A kernel longer than a short example reads zeros past its ends (padding), so
  examples of different lengths get the same features.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numba
import numpy as np

from rnnkit.data.windows import Scaler

Label = str | int
#: Warping windows (fractions of the longer series) tried by leave-one-out.
WINDOWS = (0.0, 0.05, 0.1, 0.2, 1.0)
#: Above this many DTW cells, leave-one-out would take minutes: the window is then fixed.
LEARN_BUDGET = 3e9
KERNEL_FIELDS = (
    "sizes",
    "weights",
    "weight_starts",
    "biases",
    "dilations",
    "paddings",
    "counts",
    "channels",
    "channel_starts",
)


def as_sequences(inputs: Any, name: str = "inputs") -> list[np.ndarray]:
    """``inputs`` (an ``(N, L, F)`` array or ``N`` arrays ``(L_i, F)``) as float64 arrays."""
    arrays = [np.asarray(x, dtype=np.float64) for x in inputs]
    if not arrays:
        raise ValueError(f"{name}: expected at least one sequence, got none")
    channels = arrays[0].shape[-1] if arrays[0].ndim == 2 else None
    for i, a in enumerate(arrays):
        if a.ndim != 2 or len(a) == 0 or a.shape[1] != channels:
            raise ValueError(
                f"{name}[{i}]: expected a sequence of shape (L >= 1, {channels or 'F'}), got "
                f"shape {a.shape}"
            )
        if not np.isfinite(a).all():
            raise ValueError(f"{name}[{i}]: contains NaN or inf")
    return arrays


def _flat(sequences: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All steps ``(sum L_i, F)``, each example's first row ``(N,)`` and length ``(N,)``."""
    lengths = np.array([len(s) for s in sequences], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    return np.ascontiguousarray(np.concatenate(sequences)), starts, lengths


# ---------------------------------------------------------------------- 1-NN DTW


@numba.njit(cache=True, fastmath=False)
def _dtw(a: np.ndarray, b: np.ndarray, band: int, cutoff: float) -> float:  # pragma: no cover
    """DTW_D of ``a`` ``(La, F)`` and ``b`` ``(Lb, F)`` within ``|i - j| <= band``; returns
    inf as soon as a whole row exceeds ``cutoff`` (early abandoning)."""
    la, lb = a.shape[0], b.shape[0]
    inf = np.inf
    previous = np.full(lb + 1, inf)
    current = np.full(lb + 1, inf)
    previous[0] = 0.0
    for i in range(1, la + 1):
        current[:] = inf
        low = max(1, i - band)
        high = min(lb, i + band)
        best = inf
        for j in range(low, high + 1):
            cost = 0.0
            for f in range(a.shape[1]):
                d = a[i - 1, f] - b[j - 1, f]
                cost += d * d
            step = min(previous[j - 1], previous[j], current[j - 1])
            current[j] = cost + step
            best = min(best, current[j])
        if best > cutoff:
            return inf
        previous, current = current, previous
    return previous[lb]


@numba.njit(cache=True, parallel=True)
def _nearest(
    queries: np.ndarray,
    q_starts: np.ndarray,
    q_lengths: np.ndarray,
    references: np.ndarray,
    r_starts: np.ndarray,
    r_lengths: np.ndarray,
    window: float,
    skip_self: bool,
) -> np.ndarray:  # pragma: no cover
    """The index of each query's nearest reference ``(Nq,)`` (ties: the first)."""
    out = np.empty(len(q_starts), dtype=np.int64)
    for q in numba.prange(len(q_starts)):
        a = queries[q_starts[q] : q_starts[q] + q_lengths[q]]
        best, best_at = np.inf, -1
        for r in range(len(r_starts)):
            if skip_self and r == q:
                continue
            b = references[r_starts[r] : r_starts[r] + r_lengths[r]]
            longer = max(a.shape[0], b.shape[0])
            band = max(int(np.ceil(window * longer)), abs(a.shape[0] - b.shape[0]))
            d = _dtw(a, b, band, best)
            if d < best:
                best, best_at = d, r
        out[q] = best_at
    return out


class NearestNeighbourDTW:
    """1-NN under DTW_D with a Sakoe-Chiba band.

    Args:
        window: the band's half-width as a fraction of the longer of two series (0: the
            Euclidean distance for equal lengths, 1: unconstrained), or ``"learn"``: the
            value of :data:`WINDOWS` with the best leave-one-out accuracy on the training
            set (the smallest on ties; 0.1 when that would cost over :data:`LEARN_BUDGET`
            DTW cells).

    Channels are standardised with the training set's mean and standard deviation (which
    leaves univariate nearest neighbours unchanged and keeps one channel's units from
    drowning the others).
    """

    def __init__(self, window: float | str = "learn") -> None:
        if window != "learn" and not (
            isinstance(window, (int, float)) and not isinstance(window, bool) and 0 <= window <= 1
        ):
            raise ValueError(f"window: expected 'learn' or a fraction in [0, 1], got {window!r}")
        self.window = window
        self.window_: float | None = None

    def fit(self, inputs: Any, labels: Sequence[Label]) -> NearestNeighbourDTW:
        """Remember the training examples ``N`` x ``(L_i, F)`` and labels ``(N,)``."""
        sequences = as_sequences(inputs)
        self._scaler = Scaler.fit(np.concatenate(sequences))
        self._train = _flat([self._scaler.transform(s) for s in sequences])
        self._labels = np.asarray(list(labels), dtype=object)
        if len(self._labels) != len(sequences):
            raise ValueError(
                f"labels: expected one label per input (N = {len(sequences)}), got "
                f"{len(self._labels)}"
            )
        self.window_ = self._learn_window() if self.window == "learn" else float(self.window)
        return self

    def _learn_window(self) -> float:
        values, starts, lengths = self._train
        n = len(starts)
        if n < 3 or float(n) ** 2 * float(lengths.mean()) ** 2 * len(WINDOWS) > LEARN_BUDGET:
            return 0.1
        scores = []
        for w in WINDOWS:
            nearest = _nearest(values, starts, lengths, values, starts, lengths, w, True)
            scores.append(float(np.mean(self._labels[nearest] == self._labels)))
        return WINDOWS[int(np.argmax(scores))]  # argmax: the first (smallest) best window

    def predict(self, inputs: Any) -> np.ndarray:
        """The label of each input's nearest training example: ``(N,)``."""
        if self.window_ is None:
            raise RuntimeError("NearestNeighbourDTW: call fit before predict")
        sequences = as_sequences(inputs)
        _check_channels(sequences, len(self._scaler.mean))
        queries = _flat([self._scaler.transform(s) for s in sequences])
        nearest = _nearest(*queries, *self._train, self.window_, False)
        return np.array(self._labels[nearest].tolist())


# ---------------------------------------------------------------------- ROCKET


def rocket_kernels(
    num_kernels: int, length: int, channels: int, seed: int
) -> dict[str, np.ndarray]:
    """Draw ROCKET kernels (Dempster et al. 2020, section 3.1) for series of ``length``
    steps and ``channels`` channels: lengths from {7, 9, 11}, mean-centred normal weights,
    uniform biases in [-1, 1], dilations ``floor(2^x)`` with ``x ~ U(0, log2((length - 1) /
    (kernel length - 1)))``, padding on half of the kernels, and (several channels) a random
    subset of ``floor(2^U(0, log2(min(channels, kernel length) + 1)))`` channels each."""
    rng = np.random.default_rng(seed)
    sizes = rng.choice(np.array([7, 9, 11]), num_kernels)
    counts = np.ones(num_kernels, dtype=np.int64)
    if channels > 1:
        limits = np.log2(np.minimum(channels, sizes) + 1)
        counts = np.floor(2 ** rng.uniform(0, limits)).astype(np.int64)
    weights, channel_lists = [], []
    dilations = np.empty(num_kernels, dtype=np.int64)
    paddings = np.empty(num_kernels, dtype=np.int64)
    biases = rng.uniform(-1, 1, num_kernels)
    for k in range(num_kernels):
        w = rng.normal(0, 1, (counts[k], sizes[k]))
        weights.append((w - w.mean(axis=1, keepdims=True)).ravel())
        channel_lists.append(rng.choice(channels, counts[k], replace=False))
        top = np.log2(max(length - 1, 1) / (sizes[k] - 1))
        dilations[k] = int(2 ** rng.uniform(0, max(top, 0)))
        paddings[k] = ((sizes[k] - 1) * dilations[k]) // 2 if rng.integers(2) else 0
    return {
        "sizes": sizes.astype(np.int64),
        "weights": np.concatenate(weights),
        "weight_starts": np.concatenate([[0], np.cumsum(counts * sizes)[:-1]]).astype(np.int64),
        "biases": biases,
        "dilations": dilations,
        "paddings": paddings,
        "counts": counts,
        "channels": np.concatenate(channel_lists).astype(np.int64),
        "channel_starts": np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64),
    }


@numba.njit(cache=True, parallel=True, fastmath=True)
def _rocket_features(
    values: np.ndarray,
    starts: np.ndarray,
    lengths: np.ndarray,
    sizes: np.ndarray,
    weights: np.ndarray,
    weight_starts: np.ndarray,
    biases: np.ndarray,
    dilations: np.ndarray,
    paddings: np.ndarray,
    counts: np.ndarray,
    channels: np.ndarray,
    channel_starts: np.ndarray,
) -> np.ndarray:  # pragma: no cover
    """PPV and max of every kernel on every example: ``(N, 2K)``."""
    n, kernels = len(starts), len(sizes)
    out = np.empty((n, 2 * kernels))
    for i in numba.prange(n):
        x = values[starts[i] : starts[i] + lengths[i]]
        steps = x.shape[0]
        for k in range(kernels):
            size, dilation, padding = sizes[k], dilations[k], paddings[k]
            outputs = max(1, steps + 2 * padding - (size - 1) * dilation)
            positive, largest = 0, -np.inf
            for t in range(-padding, -padding + outputs):
                total = biases[k]
                for c in range(counts[k]):
                    channel = channels[channel_starts[k] + c]
                    w0 = weight_starts[k] + c * size
                    for j in range(size):
                        at = t + j * dilation
                        if 0 <= at < steps:
                            total += weights[w0 + j] * x[at, channel]
                if total > 0:
                    positive += 1
                if total > largest:
                    largest = total
            out[i, 2 * k] = positive / outputs
            out[i, 2 * k + 1] = largest
    return out


def rocket_features(sequences: list[np.ndarray], kernels: dict[str, np.ndarray]) -> np.ndarray:
    """PPV and max of each of ``K`` kernels (:func:`rocket_kernels`) on each of ``N`` float64
    sequences ``(L_i, F)``: ``(N, 2K)``."""
    return _rocket_features(*_flat(sequences), *(kernels[key] for key in KERNEL_FIELDS))


def rocket_ridge(features: np.ndarray, labels: Sequence[Label]) -> Any:
    """ROCKET's classifier, fitted on ``features`` ``(N, 2K)`` and ``labels`` ``(N,)``: a
    scikit-learn pipeline of ``StandardScaler`` and ``RidgeClassifierCV`` (alphas
    ``logspace(-3, 3, 10)``, the penalty chosen by leave-one-out)."""
    from sklearn.linear_model import RidgeClassifierCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), RidgeClassifierCV(alphas=np.logspace(-3, 3, 10)))
    return model.fit(features, np.asarray(list(labels)))


class RocketClassifier:
    """ROCKET features + ``RidgeClassifierCV`` (alphas ``logspace(-3, 3, 10)``) on
    standardised features, as in Dempster et al. (2020).

    Channels are standardised with the training set's mean and standard deviation, where the
    paper normalises each example by itself: the same for the UCR sets (each of their series
    is already normalised), but on multivariate data a per-example normalisation erases the
    channels' levels, which can be the signal (the speakers of JapaneseVowels: 0.84 against
    0.99 with training statistics).

    Args:
        num_kernels: random kernels (10,000 in the paper): ``2 * num_kernels`` features.
        seed: draws the kernels.
    """

    def __init__(self, num_kernels: int = 10_000, seed: int = 0) -> None:
        if isinstance(num_kernels, bool) or not isinstance(num_kernels, int) or num_kernels < 1:
            raise ValueError(f"num_kernels: expected an int >= 1, got {num_kernels!r}")
        self.num_kernels = num_kernels
        self.seed = seed
        self._kernels: dict[str, np.ndarray] | None = None

    def transform(self, inputs: Any) -> np.ndarray:
        """ROCKET features ``(N, 2 * num_kernels)`` of ``N`` examples ``(L_i, F)``."""
        if self._kernels is None:
            raise RuntimeError("RocketClassifier: call fit before transform")
        sequences = as_sequences(inputs)
        _check_channels(sequences, len(self._scaler.mean))
        return rocket_features([self._scaler.transform(s) for s in sequences], self._kernels)

    def fit(self, inputs: Any, labels: Sequence[Label]) -> RocketClassifier:
        """Draw the kernels for the training lengths and fit the ridge classifier."""
        sequences = as_sequences(inputs)
        self._scaler = Scaler.fit(np.concatenate(sequences))
        length = int(np.median([len(s) for s in sequences]))
        channels = sequences[0].shape[1]
        self._kernels = rocket_kernels(self.num_kernels, length, channels, self.seed)
        self._model = rocket_ridge(self.transform(sequences), list(labels))
        return self

    def predict(self, inputs: Any) -> np.ndarray:
        """The predicted label of each example: ``(N,)``."""
        return np.array(self._model.predict(self.transform(inputs)).tolist())


def _check_channels(sequences: list[np.ndarray], channels: int) -> None:
    if sequences[0].shape[1] != channels:
        raise ValueError(
            f"inputs: expected {channels} channels as in training, got {sequences[0].shape[1]}"
        )
