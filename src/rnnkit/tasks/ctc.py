"""CTCRecognizer: read a sequence of characters from an image, column by column, with CTC.

A small convolutional front (:class:`rnnkit.nn.ConvEncoder`) turns an image ``(H, W)`` into
``T`` columns of features (its pools halve the height, and the width where they say so),
a bidirectional recurrent layer of any rnnkit cell reads the columns, and a linear head
gives, at every column, log-probabilities over the alphabet plus a *blank* (index 0).

Training minimises the Connectionist Temporal Classification loss (Graves et al. 2006,
``torch.nn.functional.ctc_loss``): the probability of a label summed over every alignment
of it to the ``T`` columns, so no character positions are needed. An alignment emits one
symbol per column; it reads as a label once repeats are merged and blanks removed, so a
label of ``S`` characters with ``R`` immediate repeats (``"77"``) needs ``T >= S + R``.

Decoding: greedy (the best symbol per column, collapsed) or prefix beam search
(:func:`ctc_prefix_beam_search`), which sums the alignments of each candidate label.
Metrics: whole-sequence accuracy and the character error rate (:func:`character_error_rate`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import TensorDataset

from rnnkit.checks import check_choice, check_int, check_rate
from rnnkit.nn import LAYERS, ConvEncoder, make_layer
from rnnkit.tasks._base import Task, build_network
from rnnkit.train import History, TrainConfig, train

TASK = "ctc"
BLANK = 0
Labelling = tuple[int, ...]


# ---------------------------------------------------------------------- decoding and metrics


def ctc_greedy_decode(log_probs: Tensor, blank: int = BLANK) -> list[Labelling]:
    """The most probable symbol of every step, repeats merged and blanks removed.

    Args:
        log_probs: ``(N, T, C)`` (or ``(T, C)`` for one sequence) scores per step.
    Returns:
        ``N`` labellings (tuples of symbol indices).
    """
    paths = log_probs.reshape(-1, *log_probs.shape[-2:]).argmax(-1).tolist()  # (N, T)
    return [
        tuple(s for t, s in enumerate(path) if s != blank and (t == 0 or s != path[t - 1]))
        for path in paths
    ]


def ctc_prefix_beam_search(
    log_probs: Tensor, beam_size: int = 8, blank: int = BLANK
) -> list[tuple[Labelling, float]]:
    """Prefix beam search (Hannun et al. 2014) over one sequence's ``(T, C)`` log-probs.

    Each kept prefix carries two log-probabilities: of the alignments of the steps so far
    that read as the prefix and end in a blank, and of those that end in its last symbol.
    The split matters: a repeated symbol extends the prefix only after a blank, and
    otherwise merges into it. After every step the ``beam_size`` most probable prefixes are
    kept, so with a beam as large as the number of labellings the result is exact.

    Returns:
        Up to ``beam_size`` ``(labelling, log-probability)`` pairs, most probable first.
    """
    check_int("beam_size", beam_size)
    if log_probs.dim() != 2:
        raise ValueError(f"log_probs: expected shape (T, C), got {tuple(log_probs.shape)}")
    steps = log_probs.detach().double().tolist()
    beams: dict[Labelling, tuple[float, float]] = {(): (0.0, -math.inf)}  # (blank, non-blank)
    for scores in steps:
        grown: dict[Labelling, list[float]] = {}
        for prefix, (ends_blank, ends_symbol) in beams.items():
            total = np.logaddexp(ends_blank, ends_symbol)
            for symbol, score in enumerate(scores):
                if symbol == blank:
                    _add(grown, prefix, 0, total + score)
                elif prefix and symbol == prefix[-1]:
                    _add(grown, prefix, 1, ends_symbol + score)  # "a" + "a" merges into "a"
                    _add(grown, (*prefix, symbol), 1, ends_blank + score)  # "a" + blank + "a"
                else:
                    _add(grown, (*prefix, symbol), 1, total + score)
        ranked = sorted(grown.items(), key=lambda item: -np.logaddexp(*item[1]))
        beams = {prefix: (a, b) for prefix, (a, b) in ranked[:beam_size]}
    return [(prefix, float(np.logaddexp(*p))) for prefix, p in beams.items()]


def _add(beams: dict[Labelling, list[float]], prefix: Labelling, slot: int, value: float) -> None:
    """Add probability ``exp(value)`` to the alignments of ``prefix`` that end in a blank
    (``slot`` 0) or in its last symbol (1)."""
    if value == -math.inf:  # e.g. "a" + "a" with no blank seen yet: no alignment
        return
    entry = beams.setdefault(prefix, [-math.inf, -math.inf])
    entry[slot] = np.logaddexp(entry[slot], value)


def edit_distance(a: Sequence[Any], b: Sequence[Any]) -> int:
    """Levenshtein distance: the fewest insertions, deletions and substitutions from ``a``
    to ``b`` (one row of the dynamic programme at a time)."""
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        current = [i]
        for j, y in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]


def character_error_rate(truth: Sequence[str], predicted: Sequence[str]) -> float:
    """Total edit distance over total true characters (may exceed 1)."""
    if len(truth) != len(predicted):
        raise ValueError(
            f"predicted: expected one prediction per label ({len(truth)}), got {len(predicted)}"
        )
    characters = sum(len(t) for t in truth)
    if characters == 0:
        raise ValueError("truth: expected at least one character in the labels, got none")
    return sum(edit_distance(t, p) for t, p in zip(truth, predicted, strict=True)) / characters


def required_steps(label: Sequence[Any]) -> int:
    """The fewest CTC steps that can emit ``label``: its length plus its immediate repeats
    (each needs a blank in between)."""
    return len(label) + sum(a == b for a, b in pairwise(label))


# ---------------------------------------------------------------------- model


@dataclass
class CTCConfig:
    """The recogniser's size.

    Attributes:
        channels: output channels of each convolutional block.
        pools: one ``(height, width)`` pooling window per block; the widths set the steps
            ``T = W // prod(widths)``, which must fit the longest label (see module doc).
        cell: a layer name from :data:`rnnkit.nn.LAYERS`; it reads the columns both ways.
        hidden_size, num_layers: the recurrent layer's sizes (per direction).
        dropout: before the head, and between stacked recurrent layers.
    """

    channels: tuple[int, ...] = (32, 64)
    pools: tuple[tuple[int, int], ...] = ((2, 1), (2, 2))
    cell: str = "lstm"
    hidden_size: int = 96
    num_layers: int = 1
    dropout: float = 0.1

    def __post_init__(self) -> None:
        self.channels = tuple(self.channels)
        self.pools = tuple(tuple(p) for p in self.pools)  # type: ignore[misc]
        check_choice("cell", self.cell, tuple(sorted(LAYERS)))
        check_int("hidden_size", self.hidden_size)
        check_int("num_layers", self.num_layers)
        check_rate("dropout", self.dropout)
        ConvEncoder(1, self.channels, self.pools)  # checks channels and pools


class CTCNetwork(nn.Module):
    """Images ``(N, H, W)`` -> log-probabilities ``(N, T, C)`` over blank + ``C - 1``
    symbols, ``T = W'`` columns of the convolutional feature map."""

    def __init__(self, height: int, num_symbols: int, config: CTCConfig) -> None:
        super().__init__()
        self.conv = ConvEncoder(1, config.channels, config.pools)
        channels, rows, _ = self.conv.output_shape(height, math.prod(p[1] for p in config.pools))
        self.encoder = make_layer(
            config.cell,
            channels * rows,
            config.hidden_size,
            num_layers=config.num_layers,
            dropout=config.dropout if config.num_layers > 1 else 0.0,
            bidirectional=True,
            batch_first=True,
        )
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(2 * self.encoder.state_sizes[0], num_symbols + 1)

    def forward(self, images: Tensor) -> Tensor:
        features = self.conv(images.unsqueeze(1))  # (N, C', H', T)
        columns = features.flatten(1, 2).transpose(1, 2)  # (N, T, C' * H')
        output, _ = self.encoder(columns)  # (N, T, 2 * H_out)
        return torch.log_softmax(self.head(self.dropout(output)), dim=-1)  # (N, T, C)


def _ctc_loss(network: nn.Module, batch: tuple[Tensor, Tensor, Tensor]) -> Tensor:
    images, targets, target_lengths = batch  # (N, H, W), (N, S_max), (N,)
    log_probs = network(images)  # (N, T, C)
    steps = torch.full((len(images),), log_probs.shape[1], dtype=torch.int64)
    return nn.functional.ctc_loss(
        log_probs.transpose(0, 1), targets, steps, target_lengths, blank=BLANK
    )


@dataclass
class _Fitted:
    alphabet: str  # symbol k + 1 is alphabet[k]; 0 is the blank
    height: int  # H of the training images (any width will do)
    mean: float
    std: float
    history: History = field(default_factory=History)
    metadata: dict[str, Any] = field(default_factory=dict)


class CTCRecognizer(Task[_Fitted, CTCNetwork]):
    """Fit, predict, evaluate, save and load a CTC sequence recogniser for images.

    Example:
        >>> from rnnkit.data.digits import digit_strips, load_digit_split
        >>> train_digits, test_digits = load_digit_split()
        >>> images, labels = digit_strips(train_digits, 4000)
        >>> model = CTCRecognizer(hidden_size=64)
        >>> history = model.fit(images, labels)                           # doctest: +SKIP
        >>> model.predict(digit_strips(test_digits, 3)[0], beam_size=8)   # doctest: +SKIP
        ['3951', '0270981', '66415']
    """

    task = TASK
    config_type = CTCConfig
    config: CTCConfig
    # what docs/experiments/vision.md measured on the digit strips (the slow quality test)
    default_training = TrainConfig(max_epochs=12, patience=3, batch_size=32)

    def fit(
        self,
        images: np.ndarray,
        labels: Sequence[str],
        val_fraction: float = 0.1,
        log_dir: str | Path | None = None,
        progress: bool = True,
        trainer: Any = None,
        resume: bool = False,
    ) -> History:
        """Train on ``images`` ``(N, H, W)`` and their ``N`` labels (non-empty strings, one
        symbol per character); a seeded ``val_fraction`` of them is held out for early
        stopping. The alphabet is the set of characters of the labels. ``log_dir``,
        ``progress``, ``trainer`` and ``resume`` are :func:`rnnkit.train.train`'s."""
        array = check_images(images)
        texts = _check_labels(labels, len(array))
        if check_rate("val_fraction", val_fraction) == 0:
            raise ValueError(f"val_fraction: expected a float in (0, 1), got {val_fraction}")
        if len(array) < 2:
            raise ValueError("images: expected at least 2 (training and validation), got 1")
        steps = ConvEncoder(1, self.config.channels, self.config.pools).output_shape(
            *array.shape[1:]
        )[2]  # T
        for i, text in enumerate(texts):
            if required_steps(text) > steps:
                raise ValueError(
                    f"labels[{i}]: {text!r} needs at least {required_steps(text)} CTC steps "
                    f"({len(text)} characters + {required_steps(text) - len(text)} repeats), "
                    f"but images {array.shape[1]}x{array.shape[2]} give only {steps}; use "
                    f"wider images or pools that keep more columns"
                )
        self._fitted = _Fitted(
            "".join(sorted(set("".join(texts)))),
            array.shape[1],
            float(array.mean()),
            float(array.std()) or 1.0,
        )
        rows = np.random.default_rng(self.training.seed).permutation(len(array))
        held = max(1, round(len(array) * val_fraction))
        x, targets, lengths = self._tensors(array), *self._targets(texts)
        datasets = [
            TensorDataset(x[part], targets[part], lengths[part])
            for part in (torch.from_numpy(rows[held:]), torch.from_numpy(rows[:held]))
        ]
        torch.manual_seed(self.training.seed)
        self.network = CTCNetwork(array.shape[1], len(self.alphabet), self.config)
        history = train(
            self.network,
            _ctc_loss,
            *datasets,
            self.training,
            log_dir,
            progress,
            trainer,
            resume=resume,
        )
        self._fitted.history = history
        return history

    def log_probs(self, images: np.ndarray) -> Tensor:
        """Per-column log-probabilities ``(N, T, C)``; column 0 is the blank, column
        ``k + 1`` is ``alphabet[k]``."""
        network, fitted = self._require_network(), self._require_fitted()
        x = self._tensors(check_images(images, fitted.height))
        network.conv.output_shape(*x.shape[1:])  # a ValueError if too narrow
        network.eval()
        with torch.no_grad():
            return torch.cat([network(x[i : i + 256]) for i in range(0, len(x), 256)])

    def predict(self, images: np.ndarray, beam_size: int = 1) -> list[str]:
        """The label read from each image ``(N, H, W)``: greedy decoding for
        ``beam_size=1``, prefix beam search otherwise."""
        check_int("beam_size", beam_size)
        log_probs = self.log_probs(images)
        if beam_size == 1:
            labellings = ctc_greedy_decode(log_probs)
        else:
            labellings = [ctc_prefix_beam_search(lp, beam_size)[0][0] for lp in log_probs]
        return ["".join(self.alphabet[s - 1] for s in labelling) for labelling in labellings]

    def evaluate(
        self, images: np.ndarray, labels: Sequence[str], beam_size: int = 1
    ) -> dict[str, float]:
        """``{"sequence_accuracy", "cer"}``: the share of labels read exactly, and the
        character error rate."""
        texts = _check_labels(labels, None)
        self._targets(texts)  # unknown characters are an error, not a silent miss
        predictions = self.predict(images, beam_size)
        if len(predictions) != len(texts):
            raise ValueError(
                f"labels: expected one label per image (N = {len(predictions)}), got {len(texts)}"
            )
        exact = np.mean([p == t for p, t in zip(predictions, texts, strict=True)])
        return {"sequence_accuracy": float(exact), "cer": character_error_rate(texts, predictions)}

    def _tensors(self, images: np.ndarray) -> Tensor:
        fitted = self._require_fitted()
        return torch.from_numpy(((images - fitted.mean) / fitted.std).astype(np.float32))

    def _targets(self, texts: list[str]) -> tuple[Tensor, Tensor]:
        """Symbol indices padded with blanks ``(N, S_max)`` and label lengths ``(N,)``."""
        index = {c: k + 1 for k, c in enumerate(self.alphabet)}
        unknown = sorted({c for text in texts for c in text} - set(index))
        if unknown:
            raise ValueError(
                f"labels: characters not in the model's alphabet {self.alphabet!r}: "
                f"{', '.join(map(repr, unknown))}"
            )
        targets = torch.zeros(len(texts), max(map(len, texts)), dtype=torch.int64)
        for row, text in enumerate(texts):
            targets[row, : len(text)] = torch.tensor([index[c] for c in text])
        return targets, torch.tensor([len(t) for t in texts], dtype=torch.int64)

    def save(self, directory: str | Path, metadata: dict[str, Any] | None = None) -> Path:
        """Write weights (safetensors) and config, alphabet, image shape and scaling, curves
        and ``metadata`` (JSON) to ``directory``."""
        fitted = self._require_fitted()
        fitted_state = {
            "alphabet": fitted.alphabet,
            "height": fitted.height,
            "mean": fitted.mean,
            "std": fitted.std,
        }
        return self._save(directory, fitted_state, metadata)

    @classmethod
    def load(cls, directory: str | Path) -> CTCRecognizer:
        """Rebuild a recogniser saved with :meth:`save`."""
        model, state, weights = cls._read(directory)
        model._fitted = _Fitted(
            state["alphabet"],
            state["height"],
            state["mean"],
            state["std"],
            History(**state["history"]),
            state["metadata"],
        )
        model.network = build_network(
            directory,
            partial(CTCNetwork, state["height"], len(state["alphabet"]), model.config),
            weights,
        )
        return model

    @property
    def alphabet(self) -> str:
        """The characters the model reads; symbol ``k + 1`` is ``alphabet[k]``."""
        return self._require_fitted().alphabet


# ---------------------------------------------------------------------- input checks


def check_images(images: object, height: int | None = None, width: int | None = None) -> np.ndarray:
    """Finite float64 images ``(N >= 1, H, W)``; ``height`` and ``width`` fix ``H`` and ``W``
    where given."""
    if isinstance(images, Tensor):
        images = images.detach().cpu().numpy()
    if not isinstance(images, np.ndarray) or images.dtype.kind not in "biuf":
        raise TypeError(f"images: expected a numeric array (N, H, W), got {type(images).__name__}")
    if (
        images.ndim != 3
        or len(images) == 0
        or (height and images.shape[1] != height)
        or (width and images.shape[2] != width)
    ):
        expected = f"(N, {height or 'H'}, {width or 'W'})"
        raise ValueError(f"images: expected shape {expected} with N >= 1, got {images.shape}")
    if not np.isfinite(images).all():
        raise ValueError("images: contains NaN or inf")
    return images.astype(np.float64)


def _check_labels(labels: Iterable[str], count: int | None) -> list[str]:
    if isinstance(labels, str):
        raise TypeError("labels: expected a list of strings, got one str; wrap it in a list")
    texts = list(labels)
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"labels[{i}]: expected a str, got {type(text).__name__} {text!r}")
        if not text:
            raise ValueError(f"labels[{i}]: expected at least one character, got ''")
    if count is not None and len(texts) != count:
        raise ValueError(f"labels: expected one label per image (N = {count}), got {len(texts)}")
    if not texts:
        raise ValueError("labels: expected at least one label, got none")
    return texts
