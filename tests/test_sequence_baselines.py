"""1-NN DTW and ROCKET: their kernels against direct re-computations, their accuracy against
the published numbers on a bundled UCR set."""

from __future__ import annotations

import numpy as np
import pytest

from rnnkit.data import dataset_path
from rnnkit.data.sequences import read_sequences
from rnnkit.sequence_baselines import (
    KERNEL_FIELDS,
    NearestNeighbourDTW,
    RocketClassifier,
    _dtw,
    _rocket_features,
    rocket_kernels,
)

FILES = dataset_path("sentiment").parent


def reference_dtw(a: np.ndarray, b: np.ndarray, band: int) -> float:
    """The textbook recurrence on the full cost matrix."""
    cost = np.full((len(a) + 1, len(b) + 1), np.inf)
    cost[0, 0] = 0
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            if abs(i - j) <= band:
                d = float(((a[i - 1] - b[j - 1]) ** 2).sum())
                cost[i, j] = d + min(cost[i - 1, j - 1], cost[i - 1, j], cost[i, j - 1])
    return cost[-1, -1]


@pytest.mark.parametrize(("la", "lb", "band"), [(9, 9, 0), (9, 9, 2), (7, 11, 4), (12, 5, 20)])
def test_dtw_matches_the_full_matrix_recurrence(la: int, lb: int, band: int) -> None:
    rng = np.random.default_rng(la * 100 + band)
    a, b = rng.normal(size=(la, 3)), rng.normal(size=(lb, 3))
    assert _dtw(a, b, band, np.inf) == pytest.approx(reference_dtw(a, b, band))


def test_dtw_band_zero_is_the_squared_euclidean_distance() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(20, 2)), rng.normal(size=(20, 2))
    assert _dtw(a, b, 0, np.inf) == pytest.approx(((a - b) ** 2).sum())


def test_nearest_neighbour_finds_the_shifted_copy() -> None:
    """A bump moved by a few steps is far in Euclidean distance, near under DTW."""
    t = np.arange(60)

    def bump(centre: float, width: float) -> np.ndarray:
        return np.exp(-(((t - centre) / width) ** 2))[:, None]

    train = [bump(20, 2), bump(30, 5)]
    query = [bump(30, 2)]  # the narrow bump, shifted by 10 steps
    assert NearestNeighbourDTW(window=0.0).fit(train, ["narrow", "wide"]).predict(query)[0] == (
        "wide"
    )
    assert NearestNeighbourDTW(window=0.2).fit(train, ["narrow", "wide"]).predict(query)[0] == (
        "narrow"
    )


def reference_features(x: np.ndarray, kernels: dict, k: int) -> tuple[float, float]:
    """PPV and max of kernel ``k`` by explicit zero padding and a dilated dot product."""
    size, dilation, padding = kernels["sizes"][k], kernels["dilations"][k], kernels["paddings"][k]
    count = kernels["counts"][k]
    channels = kernels["channels"][kernels["channel_starts"][k] :][:count]
    start = kernels["weight_starts"][k]
    weights = kernels["weights"][start : start + count * size].reshape(count, size)
    padded = np.pad(x[:, channels], ((padding, padding), (0, 0)))
    span = (size - 1) * dilation
    outputs = []
    for t in range(max(1, len(padded) - span)):
        taps = [t + j * dilation for j in range(size)]
        window = np.array([padded[p] if p < len(padded) else np.zeros(count) for p in taps])
        outputs.append(kernels["biases"][k] + float((window.T * weights).sum()))
    outputs = np.array(outputs)
    return float((outputs > 0).mean()), float(outputs.max())


@pytest.mark.parametrize(("length", "channels"), [(40, 1), (25, 4), (5, 3)])
def test_rocket_features_match_a_direct_convolution(length: int, channels: int) -> None:
    kernels = rocket_kernels(30, 40, channels, seed=length)
    x = np.random.default_rng(1).normal(size=(length, channels))
    starts, lengths = np.array([0]), np.array([length])
    features = _rocket_features(x, starts, lengths, *(kernels[f] for f in KERNEL_FIELDS))
    for k in range(30):
        ppv, largest = reference_features(x, kernels, k)
        assert features[0, 2 * k] == pytest.approx(ppv)
        assert features[0, 2 * k + 1] == pytest.approx(largest)


def test_rocket_kernels_follow_the_paper() -> None:
    kernels = rocket_kernels(2000, 150, 1, seed=0)
    assert set(kernels["sizes"]) == {7, 9, 11}
    assert np.all(kernels["biases"] >= -1) and np.all(kernels["biases"] <= 1)
    # the dilated kernel spans at most the series: 2^x with x <= log2((150 - 1) / (size - 1))
    assert np.all((kernels["sizes"] - 1) * kernels["dilations"] <= 149)
    assert 0.4 < np.mean(kernels["paddings"] > 0) < 0.6
    for k in range(20):
        start, size = kernels["weight_starts"][k], kernels["sizes"][k]
        assert abs(kernels["weights"][start : start + size].sum()) < 1e-9  # mean-centred


def test_gunpoint_accuracy_matches_the_published_numbers() -> None:
    """GunPoint: the UCR archive lists 1-NN DTW (learned window) at error 0.087 (Dau et al.
    2019), and ROCKET's paper reports accuracy 1.000 (Dempster et al. 2020)."""
    train = read_sequences(FILES / "GunPoint_TRAIN.ts.gz")
    test = read_sequences(FILES / "GunPoint_TEST.ts.gz")
    truth = np.array(test.labels)
    dtw = NearestNeighbourDTW().fit(train.sequences, train.labels)
    assert np.mean(dtw.predict(test.sequences) == truth) == pytest.approx(1 - 0.087, abs=0.01)
    rocket = RocketClassifier(seed=0).fit(train.sequences, train.labels)
    assert np.mean(rocket.predict(test.sequences) == truth) >= 0.98


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: NearestNeighbourDTW(window=2), r"window: expected 'learn' or a fraction"),
        (lambda: RocketClassifier(num_kernels=0), r"num_kernels: expected an int >= 1"),
        (lambda: RocketClassifier(num_kernels=5).fit([np.ones((4, 2))] * 2, [1, 2]).predict(
            [np.ones((4, 3))]), r"inputs: expected 2 channels as in training, got 3"),
        (lambda: NearestNeighbourDTW().fit([np.ones((4, 1)), np.ones(3)], [1, 2]),
         r"inputs\[1\]: expected a sequence of shape \(L >= 1, 1\), got shape \(3,\)"),
    ],
)  # fmt: skip
def test_bad_input_is_a_clear_error(make: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()  # type: ignore[operator]
