"""SequenceClassifier: many-to-one classification of texts or numeric sequences.

Texts are split into words or characters, mapped to indices by a vocabulary built from the
training part only (unseen tokens become ``<unk>``) and embedded; numeric sequences
``(N, L, F)`` are standardised per feature with training statistics. Either goes through a
(bi)directional encoder of any rnnkit cell, whose outputs are pooled over the *valid* steps
of each sequence only (the layer's ``lengths=`` keeps padding out):

* ``"last"``: the final state of each direction (the forward one after the last valid step,
  the backward one after reading back to the first step);
* ``"mean"`` / ``"max"``: the mean / maximum of the outputs over the valid steps;
* a ``+``-joined combination such as ``"mean+max"`` concatenates them.

Dropout and a linear head then give one logit per class.

One :meth:`SequenceClassifier.fit` takes both kinds of input (a list of strings, or a float
array ``(N, L, F)`` / a list of ``(L_i, F)`` arrays): the kind is a property of the data, not
of the model's API, so ``predict``, ``predict_proba`` and ``evaluate`` accept exactly what
``fit`` took, and the model remembers which kind it was fitted on.
"""

from __future__ import annotations

import csv
import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score
from sklearn.model_selection import train_test_split
from torch import Tensor, nn
from torch.nn.utils.rnn import pad_sequence

from rnnkit.checks import check_bool, check_choice, check_int, check_rate
from rnnkit.data import Vocabulary, dataset_path, pad_batch
from rnnkit.data.windows import Scaler
from rnnkit.nn import LAYERS, make_layer
from rnnkit.preprocess import TOKENIZERS
from rnnkit.tasks._base import Task, build_network
from rnnkit.tasks.classifier_blend import BLENDS, Fold, RocketBlend, fit_blend
from rnnkit.train import History, TrainConfig, train

TASK = "classifier"
POOLINGS = ("last", "mean", "max")
FRONT_ENDS = ("none", "conv")
AUGMENTATIONS = ("jitter", "scaling", "slicing")
Label = str | int
Inputs = Sequence[str] | np.ndarray | Sequence[np.ndarray]  # texts or (N, L, F) sequences


@dataclass
class ClassifierConfig:
    """What the model reads and how big it is.

    Attributes:
        tokens: ``"word"`` or ``"char"`` tokens (texts only).
        min_count: keep tokens seen at least this often in the training part.
        max_vocab: at most this many vocabulary entries, ``<pad>`` and ``<unk>`` included.
        max_length: keep the first ``max_length`` tokens / steps of each example (None: all).
        embedding_size: width of the token embeddings (texts only).
        cell: a layer name from :data:`rnnkit.nn.LAYERS`.
        hidden_size, num_layers, bidirectional: the encoder.
        pooling: ``"last"``, ``"mean"``, ``"max"`` or a ``+``-joined combination.
        dropout: on the embeddings, between encoder layers and before the head.
        token_dropout: in training, replace each token by ``<unk>`` with this probability
            (word dropout, Iyyer et al. 2015), so the model learns to read past the unknown
            words it meets at test time (texts only).
        front_end: ``"none"`` or ``"conv"``: two 1-D convolutions (kernels 7 and 5, batch
            norm, ReLU; the fully convolutional front of LSTM-FCN, Karim et al. 2017) before
            the encoder (numeric sequences only).
        conv_channels: the convolutions' output channels.
        stride: average each ``stride`` steps into one before the encoder, so a long
            sequence is read in fewer recurrent steps (numeric sequences only).
        augment: ``"none"`` or a ``+``-joined choice of ``"jitter"`` (Gaussian noise of
            0.03 standard deviations), ``"scaling"`` (each channel times N(1, 0.1)) and
            ``"slicing"`` (a random window of 90 % of the steps), applied to training batches
            only (Um et al. 2017; Le Guennec et al. 2016; numeric sequences only).
        members: train this many networks, each with its own seed and validation split,
            and average their probabilities (for small data, where one split and one seed
            decide too much).
        blend: ``"none"`` or ``"rocket"``: mix the network's probabilities with those of
            ROCKET's ridge classifier, the weight chosen on the validation examples
            (:mod:`rnnkit.tasks.classifier_blend`; numeric sequences only).
        rocket_kernels: ROCKET's random kernels for the blend.
    """

    tokens: str = "word"
    min_count: int = 1
    max_vocab: int | None = 20_000
    max_length: int | None = None
    embedding_size: int = 64
    cell: str = "gru"
    hidden_size: int = 64
    num_layers: int = 1
    bidirectional: bool = True
    pooling: str = "mean+max"
    dropout: float = 0.5
    token_dropout: float = 0.2
    front_end: str = "none"
    conv_channels: int = 64
    stride: int = 1
    augment: str = "none"
    members: int = 1
    blend: str = "none"
    rocket_kernels: int = 10_000

    def __post_init__(self) -> None:
        check_choice("tokens", self.tokens, tuple(TOKENIZERS))
        check_choice("cell", self.cell, tuple(sorted(LAYERS)))
        for name in (
            "min_count",
            "embedding_size",
            "hidden_size",
            "num_layers",
            "conv_channels",
            "stride",
            "members",
            "rocket_kernels",
        ):
            check_int(name, getattr(self, name))
        check_choice("front_end", self.front_end, FRONT_ENDS)
        check_choice("blend", self.blend, BLENDS)
        chosen = self.augment.split("+") if isinstance(self.augment, str) else []
        if self.augment != "none" and (
            not chosen or not set(chosen) <= set(AUGMENTATIONS) or len(set(chosen)) != len(chosen)
        ):
            raise ValueError(
                "augment: expected 'none' or a '+'-joined choice of 'jitter', 'scaling', "
                f"'slicing', got {self.augment!r}"
            )
        if self.max_vocab is not None:
            check_int("max_vocab", self.max_vocab, minimum=3)
        if self.max_length is not None:
            check_int("max_length", self.max_length)
        check_bool("bidirectional", self.bidirectional)
        check_rate("dropout", self.dropout)
        check_rate("token_dropout", self.token_dropout)
        parts = self.pooling.split("+") if isinstance(self.pooling, str) else []
        if not parts or not set(parts) <= set(POOLINGS) or len(set(parts)) != len(parts):
            raise ValueError(
                "pooling: expected 'last', 'mean', 'max' or a '+'-joined combination such as "
                f"'mean+max', got {self.pooling!r}"
            )


class ClassifierNetwork(nn.Module):
    """Token ids ``(N, L)`` (with ``vocab_size``) or features ``(N, L, F)``, and lengths
    ``(N,)`` in ``[1, L]`` -> logits ``(N, C)``."""

    def __init__(
        self, num_features: int, num_classes: int, config: ClassifierConfig, vocab_size: int = 0
    ) -> None:
        super().__init__()
        self.embedding = (
            nn.Embedding(vocab_size, config.embedding_size, padding_idx=0) if vocab_size else None
        )
        numeric = not vocab_size
        self.front = (
            ConvFrontEnd(num_features, config.conv_channels)
            if numeric and config.front_end == "conv"
            else None
        )
        self.stride = config.stride if numeric else 1
        self.augment = () if config.augment == "none" or not numeric else config.augment.split("+")
        width_in = config.embedding_size if vocab_size else num_features
        self.encoder = make_layer(
            config.cell,
            config.conv_channels if self.front is not None else width_in,
            config.hidden_size,
            num_layers=config.num_layers,
            dropout=config.dropout if config.num_layers > 1 else 0.0,
            bidirectional=config.bidirectional,
            batch_first=True,
        )
        self.token_dropout = config.token_dropout
        self.pooling = tuple(config.pooling.split("+"))
        width = self.encoder.num_directions * self.encoder.state_sizes[0]  # D * H_out
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(len(self.pooling) * width, num_classes)

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        if self.embedding is not None:
            if self.training and self.token_dropout > 0:
                dropped = (torch.rand(x.shape, device=x.device) < self.token_dropout) & (x != 0)
                x = x.masked_fill(dropped, 1)  # (N, L): <unk> (index 1), padding (0) kept
            x = self.dropout(self.embedding(x))  # (N, L, E)
        elif self.front is not None or self.stride > 1 or (self.training and self.augment):
            x = _zero_padding(x, lengths)  # whatever a caller padded with, they read zeros
            if self.training and self.augment:
                x, lengths = augment(x, lengths, self.augment)
            if self.front is not None:
                x = self.front(x, lengths)  # (N, L, conv_channels)
            if self.stride > 1:
                x, lengths = _pool_steps(x, lengths, self.stride)
        output, state = self.encoder(x, lengths=lengths)  # (N, L, D * H_out), zeros past lengths
        pooled = torch.cat([self._pool(kind, output, state, lengths) for kind in self.pooling], -1)
        return self.head(self.dropout(pooled))  # (N, C)

    def _pool(self, kind: str, output: Tensor, state: Any, lengths: Tensor) -> Tensor:
        """One pooling of the valid steps: ``(N, D * H_out)``."""
        if kind == "last":
            h_n = state if isinstance(state, Tensor) else state[0]  # (D * num_layers, N, H_out)
            top = h_n[-self.encoder.num_directions :]  # (D, N, H_out): the last layer
            return top.transpose(0, 1).flatten(1)
        if kind == "mean":  # padded outputs are zero, so the sum covers the valid steps only
            return output.sum(1) / lengths.clamp(min=1).unsqueeze(1).to(output.dtype)
        steps = torch.arange(output.shape[1], device=output.device)  # (L,)
        padding = steps.unsqueeze(0) >= lengths.unsqueeze(1)  # (N, L)
        return output.masked_fill(padding.unsqueeze(-1), float("-inf")).amax(1)


class ConvFrontEnd(nn.Module):
    """Two same-length 1-D convolutions with batch norm and ReLU: ``(N, L, F)`` ->
    ``(N, L, C)``, zero past each sequence's length (so a sequence's result does not depend
    on the longer ones padded into its batch)."""

    def __init__(self, num_features: int, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(num_features, channels, 7, padding=3)
        self.norm1 = nn.BatchNorm1d(channels)
        self.conv2 = nn.Conv1d(channels, channels, 5, padding=2)
        self.norm2 = nn.BatchNorm1d(channels)

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        for conv, norm in ((self.conv1, self.norm1), (self.conv2, self.norm2)):
            x = torch.relu(norm(conv(x.transpose(1, 2)))).transpose(1, 2)
            x = _zero_padding(x, lengths)  # the next convolution reads zeros there
        return x


def _zero_padding(x: Tensor, lengths: Tensor) -> Tensor:
    """``x`` ``(N, L, C)`` with the steps at and past ``lengths`` ``(N,)`` set to zero."""
    steps = torch.arange(x.shape[1], device=x.device)
    return x * (steps.unsqueeze(0) < lengths.unsqueeze(1)).unsqueeze(-1).to(x.dtype)


def _pool_steps(x: Tensor, lengths: Tensor, stride: int) -> tuple[Tensor, Tensor]:
    """Average each ``stride`` steps: ``(N, L, C)`` -> ``(N, ceil(L / stride), C)``; a last,
    partial window counts the zeros past the sequence, as it would alone in its batch."""
    x = _zero_padding(x, lengths)
    extra = -x.shape[1] % stride
    x = nn.functional.pad(x, (0, 0, 0, extra))
    pooled = nn.functional.avg_pool1d(x.transpose(1, 2), stride, stride).transpose(1, 2)
    return pooled, (lengths + stride - 1) // stride


def augment(x: Tensor, lengths: Tensor, kinds: Sequence[str]) -> tuple[Tensor, Tensor]:
    """Random training-time transforms of a padded batch ``(N, L, F)`` with ``lengths``
    ``(N,)``: ``"slicing"`` keeps a random window of 90 % of each sequence's steps (its new
    length), ``"scaling"`` multiplies each sequence's channels by N(1, 0.1) factors,
    ``"jitter"`` adds N(0, 0.03) noise; padding stays zero."""
    if "slicing" in kinds:
        kept = torch.clamp((lengths.to(torch.float32) * 0.9).ceil().to(lengths.dtype), min=1)
        start = (torch.rand(len(lengths)) * (lengths - kept + 1).to(torch.float32)).long()
        index = (start.unsqueeze(1) + torch.arange(x.shape[1])).clamp(max=x.shape[1] - 1)
        x = x.gather(1, index.unsqueeze(-1).expand(-1, -1, x.shape[2]))
        lengths = kept
    if "scaling" in kinds:
        x = x * (1 + 0.1 * torch.randn(x.shape[0], 1, x.shape[2], dtype=x.dtype))
    if "jitter" in kinds:
        x = x + 0.03 * torch.randn_like(x)
    return _zero_padding(x, lengths), lengths


class ClassifierEnsemble(nn.Module):
    """Members of one architecture whose class probabilities are averaged: returns the log of
    the mean probabilities ``(N, C)`` (so a softmax of it gives the mean)."""

    def __init__(self, members: list[ClassifierNetwork]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        probabilities = torch.stack([torch.softmax(m(x, lengths), -1) for m in self.members])
        return probabilities.mean(0).log()


@dataclass
class _Fitted:
    kind: str  # "text" or "sequence"
    classes: tuple[Label, ...]
    num_features: int
    vocabulary: Vocabulary | None = None
    scaler: Scaler | None = None
    blend: dict[str, Any] | None = None  # what fit_blend chose, with blend="rocket"
    history: History = field(default_factory=History)
    metadata: dict[str, Any] = field(default_factory=dict)


class SequenceClassifier(Task[_Fitted, ClassifierNetwork]):
    """Fit, predict, evaluate, save and load a recurrent sequence classifier.

    Example:
        >>> texts, labels = load_sentiment()
        >>> model = SequenceClassifier(cell="gru", pooling="mean+max")
        >>> history = model.fit(texts, labels, val_fraction=0.1)         # doctest: +SKIP
        >>> model.predict(["What a great phone!"])                       # doctest: +SKIP
        array([1])
    """

    task = TASK
    config_type = ClassifierConfig
    config: ClassifierConfig

    # ------------------------------------------------------------------ training

    def fit(
        self,
        inputs: Inputs,
        labels: Iterable[Label],
        val_fraction: float | None = 0.1,
        log_dir: str | Path | None = None,
        progress: bool = True,
        trainer: Any = None,
        resume: bool = False,
        validation: tuple[Inputs, Iterable[Label]] | None = None,
        class_weights: bool = False,
    ) -> History:
        """Train on ``inputs`` with a seeded, stratified ``val_fraction`` held out for early
        stopping; the vocabulary or scaler comes from the training part only. ``log_dir``,
        ``progress``, ``trainer`` and ``resume`` are :func:`rnnkit.train.train`'s.

        Args:
            inputs: texts, or numeric sequences ``(N, L, F)`` (a list of ``(L_i, F)`` arrays
                for varying lengths).
            labels: ``N`` str or int labels, at least two classes.
            val_fraction: the share held out, or None to hold nothing out: then training
                runs all ``max_epochs`` and keeps the epoch with the lowest loss on the
                training set (the fallback when a class has too few examples to split).
            validation: your own validation ``(inputs, labels)`` instead of a held-out share.
            class_weights: weight each class's loss by ``N / (C * its count)`` (scikit-learn's
                "balanced"), so a rare class counts as much as a frequent one.

        With ``members > 1`` in the config, member ``i`` trains with seed ``seed + i`` on its
        own split (the same ``validation`` when given) and the probabilities are averaged.
        With ``blend="rocket"``, ROCKET's probabilities are then mixed in with the weight
        that does best on the members' validation examples (:attr:`blend`).
        """
        kind, examples = _examples(inputs)
        if kind == "text" and self.config.blend != "none":
            raise ValueError(
                f"blend: {self.config.blend!r} needs numeric sequences; use blend='none' for texts"
            )
        values = _labels(labels, len(examples))
        classes = _classes(values)
        parts = self._parts(kind, examples, None)
        members = self.config.members
        if resume and members > 1:
            raise ValueError(f"resume: expected a model with members = 1, got {members}")
        splits = [self._split(values, val_fraction, validation, i) for i in range(members)]
        train_rows = splits[0][0]
        if kind == "text":
            training_tokens = [parts[i] for i in train_rows]
            vocabulary = Vocabulary.build(
                training_tokens, self.config.min_count, self.config.max_vocab
            )
            self._fitted = _Fitted(kind, classes, 0, vocabulary=vocabulary)
        else:
            steps = np.concatenate([parts[i] for i in train_rows])  # (sum of L_i, F)
            self._fitted = _Fitted(kind, classes, steps.shape[1], scaler=Scaler.fit(steps))
        encoded = self._tensors(parts)
        index = {c: i for i, c in enumerate(classes)}
        targets = [index[v] for v in values]
        extra = None
        if validation is not None:
            val_values = _labels(validation[1], None)
            _check_known(val_values, classes)
            val_encoded = self._encode(validation[0])
            if len(val_encoded) != len(val_values):
                raise ValueError(
                    f"validation: expected one label per input (N = {len(val_encoded)}), got "
                    f"{len(val_values)}"
                )
            extra = list(zip(val_encoded, (index[v] for v in val_values), strict=True))
        loss = _cross_entropy
        if class_weights:
            counts = np.bincount([targets[i] for i in train_rows], minlength=len(classes))
            weight = torch.tensor(
                len(train_rows) / (len(classes) * np.maximum(counts, 1)), dtype=torch.float32
            )
            loss = functools.partial(_cross_entropy, weight=weight)
        networks, histories, folds = [], [], []
        for member, (rows, held) in enumerate(splits):
            training = replace(self.training, seed=self.training.seed + member)
            train_set = [(encoded[i], targets[i]) for i in rows]
            if extra is not None:
                val_set = extra
            elif held is None:  # nothing held out: every epoch runs, the lowest training loss wins
                val_set = train_set
                training = replace(training, patience=training.max_epochs)
            else:
                val_set = [(encoded[i], targets[i]) for i in held]
            torch.manual_seed(training.seed)
            network = ClassifierNetwork(*self._network_sizes())
            where = None if log_dir is None or members == 1 else Path(log_dir) / f"member{member}"
            history = train(
                network,
                loss,
                train_set,
                val_set,
                training,
                log_dir if members == 1 else where,
                progress,
                trainer,
                collate_fn=_collate,
                resume=resume,
            )
            histories.append(history)
            networks.append(network)
            if held is not None or extra is not None:  # examples this member has not seen
                seen = [e for e, _ in val_set]
                folds.append(
                    Fold(
                        rows, seen, np.array([t for _, t in val_set]), _probabilities(network, seen)
                    )
                )
        self.network = networks[0] if members == 1 else ClassifierEnsemble(networks)
        if self.config.blend == "rocket":
            self.network = RocketBlend(self.network, *self._rocket_sizes())
            self._fitted.blend = fit_blend(
                self.network, encoded, np.array(targets), folds, self.training.seed
            )
        self._fitted.history = histories[0]
        return histories[0]

    def _split(
        self,
        values: list[Label],
        val_fraction: float | None,
        validation: Any,
        member: int,
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Member ``member``'s ``(training rows, held-out rows or None)``."""
        rows = np.arange(len(values))
        if validation is not None or val_fraction is None:
            return rows, None
        try:
            return split_indices(values, val_fraction, self.training.seed + member, "val_fraction")
        except ValueError as error:
            if "cannot split" not in str(error):
                raise
            raise ValueError(
                f"{error}; pass val_fraction=None to hold nothing out, your own validation="
                "(inputs, labels), or the settings of plan_for_sequences"
            ) from None

    def _network_sizes(self) -> tuple[int, int, ClassifierConfig, int]:
        fitted = self._require_fitted()
        vocab_size = len(fitted.vocabulary) if fitted.vocabulary is not None else 0
        return fitted.num_features, len(fitted.classes), self.config, vocab_size

    def _rocket_sizes(self) -> tuple[int, int, int]:
        fitted = self._require_fitted()
        return self.config.rocket_kernels, fitted.num_features, len(fitted.classes)

    def _build_network(self) -> nn.Module:
        sizes = self._network_sizes()
        members = [ClassifierNetwork(*sizes) for _ in range(self.config.members)]
        network = members[0] if len(members) == 1 else ClassifierEnsemble(members)
        if self.config.blend == "rocket":
            return RocketBlend(network, *self._rocket_sizes())
        return network

    def _tokens(self, text: str, position: int) -> list[str]:
        tokens = TOKENIZERS[self.config.tokens](text)[: self.config.max_length]
        if not tokens:
            raise ValueError(
                f"inputs[{position}]: expected a text with at least one {self.config.tokens} "
                f"token, got {text!r}"
            )
        return tokens

    def _parts(self, kind: str, examples: list[Any], num_features: int | None) -> list[Any]:
        """Checked examples: token lists, or float arrays ``(L_i, F)``."""
        if kind == "text":
            return [self._tokens(text, i) for i, text in enumerate(examples)]
        return _check_arrays(examples, num_features, self.config.max_length)

    def _tensors(self, parts: list[Any]) -> list[Tensor]:
        """Model inputs: int64 ids ``(L_i,)`` or standardised float32 features ``(L_i, F)``."""
        fitted = self._require_fitted()
        if fitted.vocabulary is not None:
            return [torch.tensor(fitted.vocabulary.encode(t), dtype=torch.int64) for t in parts]
        assert fitted.scaler is not None
        return [torch.from_numpy(fitted.scaler.transform(a).astype(np.float32)) for a in parts]

    def _encode(self, inputs: Inputs) -> list[Tensor]:
        """Inputs of the kind the model was fitted on, as model inputs."""
        fitted = self._require_fitted()
        kind, examples = _examples(inputs)
        if kind != fitted.kind:
            raise ValueError(
                f"inputs: this model was fitted on {_KIND_NAMES[fitted.kind]}, got "
                f"{_KIND_NAMES[kind]}"
            )
        return self._tensors(self._parts(kind, examples, fitted.num_features))

    # ------------------------------------------------------------------ inference

    def predict_proba(self, inputs: Inputs, blend: bool = True) -> np.ndarray:
        """Class probabilities ``(N, C)``, columns in the order of :attr:`classes`;
        ``blend=False``: the network's alone, without a ROCKET blend."""
        network = self._require_network()
        check_bool("blend", blend)
        if isinstance(network, RocketBlend) and not blend:
            network = network.network
        return _probabilities(network, self._encode(inputs))

    def predict(self, inputs: Inputs, blend: bool = True) -> np.ndarray:
        """The most probable label of each input: ``(N,)``, of the training labels' type."""
        return np.array(self.classes)[self.predict_proba(inputs, blend).argmax(axis=1)]

    def evaluate(
        self, inputs: Inputs, labels: Iterable[Label], blend: bool = True
    ) -> dict[str, Any]:
        """``{"accuracy", "macro_f1", "confusion_matrix"}``; the matrix is ``(C, C)`` with
        true classes as rows and predictions as columns, both in :attr:`classes` order
        (``blend=False``: of the network alone)."""
        values = _labels(labels, None)
        _check_known(values, self.classes)
        predictions = self.predict(inputs, blend)
        if len(predictions) != len(values):
            raise ValueError(
                f"labels: expected one label per input (N = {len(predictions)}), got {len(values)}"
            )
        return classification_metrics(values, predictions.tolist(), self.classes)

    # ------------------------------------------------------------------ files

    def save(self, directory: str | Path, metadata: dict[str, Any] | None = None) -> Path:
        """Write weights (safetensors) and config, label names, vocabulary or scaler,
        curves and ``metadata`` (JSON) to ``directory``."""
        fitted = self._require_fitted()
        scaler = fitted.scaler
        fitted_state = {
            "kind": fitted.kind,
            "classes": list(fitted.classes),
            "num_features": fitted.num_features,
            "vocabulary": list(fitted.vocabulary.tokens) if fitted.vocabulary else None,
            "scaler": (
                {"mean": scaler.mean.tolist(), "std": scaler.std.tolist()} if scaler else None
            ),
            "blend": fitted.blend,
        }
        return self._save(directory, fitted_state, metadata)

    @classmethod
    def load(cls, directory: str | Path) -> SequenceClassifier:
        """Rebuild a classifier saved with :meth:`save`."""
        model, state, weights = cls._read(directory)
        scaler = state["scaler"]
        model._fitted = _Fitted(
            state["kind"],
            tuple(state["classes"]),
            state["num_features"],
            Vocabulary(tuple(state["vocabulary"])) if state["vocabulary"] else None,
            Scaler(np.array(scaler["mean"]), np.array(scaler["std"])) if scaler else None,
            state.get("blend"),  # absent from folders written before the blend
            History(**state["history"]),
            state["metadata"],
        )
        model.network = build_network(directory, model._build_network, weights)
        return model

    @property
    def classes(self) -> tuple[Label, ...]:
        """The labels seen in training, sorted: the order of probability columns."""
        return self._require_fitted().classes

    @property
    def blend(self) -> dict[str, Any] | None:
        """With ``blend="rocket"``: the chosen ``weight`` (ROCKET's share) and
        ``temperature``, and the validation accuracy of the network, ROCKET and the blend
        that chose them; else None."""
        return self._require_fitted().blend

    @property
    def vocabulary(self) -> Vocabulary | None:
        """The token vocabulary (None for numeric sequences)."""
        return self._require_fitted().vocabulary


# ---------------------------------------------------------------------- inputs and labels

_KIND_NAMES = {"text": "texts", "sequence": "numeric sequences (N, L, F)"}


def _examples(inputs: Any) -> tuple[str, list[Any]]:
    """``("text", texts)`` or ``("sequence", arrays)`` with at least one example."""
    if isinstance(inputs, str):
        raise TypeError("inputs: expected a list of texts, got one str; wrap it in a list")
    if isinstance(inputs, Tensor):
        inputs = inputs.detach().cpu().numpy()
    if isinstance(inputs, np.ndarray) and inputs.dtype.kind in "biuf" and inputs.ndim != 3:
        raise ValueError(
            f"inputs: expected numeric sequences of shape (N, L, F), got shape {inputs.shape}"
        )
    items = list(inputs)
    if not items:
        raise ValueError("inputs: expected at least one example, got none")
    if any(isinstance(item, str) for item in items):
        for i, item in enumerate(items):
            if not isinstance(item, str):
                raise TypeError(f"inputs[{i}]: expected a str, got {type(item).__name__} {item!r}")
        return "text", items
    return "sequence", items


def _check_arrays(items: list[Any], num_features: int | None, max_length: int | None) -> list:
    """Numeric examples as finite float64 arrays ``(L_i, F)``, ``L_i >= 1``."""
    arrays = []
    for i, item in enumerate(items):
        try:
            array = np.asarray(item, dtype=np.float64)
        except (TypeError, ValueError):
            raise TypeError(
                f"inputs[{i}]: expected a str or a numeric (L, F) array, got {type(item).__name__}"
            ) from None
        expected = num_features or (arrays[0].shape[1] if arrays else None)
        if array.ndim != 2 or len(array) == 0 or (expected and array.shape[1] != expected):
            features = expected if expected else "F"
            raise ValueError(
                f"inputs[{i}]: expected a sequence of shape (L >= 1, {features}), got shape "
                f"{array.shape}"
            )
        if not np.isfinite(array).all():
            raise ValueError(f"inputs[{i}]: contains NaN or inf")
        arrays.append(array[:max_length])
    return arrays


def _labels(labels: Iterable[Label], count: int | None) -> list[Label]:
    """Labels as plain Python str/int, checked: one per example, one type."""
    values = labels.tolist() if isinstance(labels, np.ndarray) else list(labels)
    values = [v.item() if isinstance(v, np.generic) else v for v in values]
    if count is not None and len(values) != count:
        raise ValueError(f"labels: expected one label per input (N = {count}), got {len(values)}")
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (str, int)):
            raise TypeError(f"labels: expected str or int labels, got {type(v).__name__} {v!r}")
    if len({type(v) for v in values}) > 1:
        raise TypeError("labels: expected all str or all int labels, got both")
    return values


def _classes(values: list[Label]) -> tuple[Label, ...]:
    classes = tuple(sorted(set(values)))
    if len(classes) < 2:
        raise ValueError(f"labels: expected at least 2 classes, got {list(classes)}")
    return classes


def _check_known(values: list[Label], classes: tuple[Label, ...]) -> None:
    unseen = sorted(set(values) - set(classes), key=repr)
    if unseen:
        raise ValueError(
            f"labels: {', '.join(map(repr, unseen))} not seen in training (known classes: "
            f"{', '.join(map(repr, classes))})"
        )


def _collate(items: list[tuple[Tensor, int]]) -> tuple[Tensor, Tensor, Tensor]:
    """``(ids or features, class)`` pairs -> padded ``(N, L)`` or ``(N, L, F)``, lengths
    ``(N,)`` and classes ``(N,)``."""
    inputs, targets = zip(*items, strict=True)
    if inputs[0].dtype == torch.int64:
        x, lengths = pad_batch(inputs, pad=0)
    else:
        x = pad_sequence(list(inputs), batch_first=True)
        lengths = torch.tensor([len(i) for i in inputs], dtype=torch.int64)
    return x, lengths, torch.tensor(targets, dtype=torch.int64)


def _probabilities(network: nn.Module, encoded: list[Tensor]) -> np.ndarray:
    """``network``'s class probabilities ``(N, C)`` for ``N`` model inputs, in eval mode."""
    network.eval()
    chunks = []
    with torch.no_grad():
        for start in range(0, len(encoded), 256):
            x, lengths, _ = _collate([(e, 0) for e in encoded[start : start + 256]])
            chunks.append(torch.softmax(network(x, lengths), dim=-1).double().numpy())
    return np.concatenate(chunks)


def _cross_entropy(
    network: nn.Module, batch: tuple[Tensor, Tensor, Tensor], weight: Tensor | None = None
) -> Tensor:
    x, lengths, targets = batch
    return nn.functional.cross_entropy(network(x, lengths), targets, weight=weight)


# ---------------------------------------------------------------------- defaults from the data


#: The most multiply-adds of ROCKET's features that the planned blend spends (about a
#: minute on one core); larger training sets get the network alone.
ROCKET_BUDGET = 2e11


@dataclass(frozen=True)
class ClassifierPlan:
    """Settings for numeric sequences chosen from the training data's size and classes
    (:func:`plan_for_sequences`); ``notes`` says why, one line each.

    Attributes:
        options: :class:`ClassifierConfig` fields (front end, stride, augmentation, members).
        training: epochs, patience and batch size.
        val_fraction: the stratified share each member holds out, or None when a class has
            too few examples to hold any out (then every epoch runs and the lowest training
            loss picks the weights).
        class_weights: whether the classes are imbalanced enough to weight the loss.
    """

    options: dict[str, Any]
    training: TrainConfig
    val_fraction: float | None
    class_weights: bool
    notes: tuple[str, ...]

    def model(self, **overrides: Any) -> SequenceClassifier:
        """A :class:`SequenceClassifier` with these settings (``overrides`` win)."""
        return SequenceClassifier(training=self.training, **{**self.options, **overrides})


def plan_for_sequences(
    labels: Sequence[Label], lengths: Sequence[int], seed: int = 0
) -> ClassifierPlan:
    """Defaults for ``N`` training sequences of ``lengths`` ``(N,)`` and ``labels`` ``(N,)``.

    * batch size about ``N / 8`` (8 to 64): small sets still take several steps per epoch;
    * epochs enough for about 500 optimiser steps (30 to 150), patience a third of them
      (at least 10), so a small, noisy validation set cannot stop training early;
    * a stratified 20 % held out (10 % from 1,000 examples on), at least one example per
      class; when a class has fewer than 2 examples or the rest would lose a class, nothing
      is held out (see :meth:`SequenceClassifier.fit`);
    * under 500 examples, 3 members with their own seeds and splits, averaged;
    * the convolutional front end, and a stride that leaves the encoder about 64 steps
      of the median length; jitter, scaling and slicing under 1,000 examples;
    * class weights when the largest class is over 1.5 times the smallest;
    * ``blend="rocket"`` (ROCKET's probabilities mixed in with a weight chosen on the
      validation examples, :mod:`rnnkit.tasks.classifier_blend`) while ROCKET's features
      cost at most :data:`ROCKET_BUDGET` multiply-adds; ``model(blend="none")`` or
      ``predict(..., blend=False)`` give the network alone.
    """
    values = _labels(labels, None)
    classes = _classes(values)
    n = len(values)
    counts = [values.count(c) for c in classes]
    notes = []
    fraction = 0.2 if n < 1000 else 0.1
    held = max(round(fraction * n), len(classes))
    val_fraction: float | None = held / n
    if min(counts) < 2 or n - held < len(classes):
        val_fraction = None
        notes.append(
            f"validation: none held out ({min(counts)} example(s) in the smallest class); "
            "all epochs run and the lowest training loss picks the weights"
        )
    else:
        notes.append(f"validation: {held} of {n} examples held out, stratified by class")
    batch = int(min(64, max(8, 2 ** round(np.log2(max(n / 8, 1))))))
    steps = int(np.ceil(n * (1 - (val_fraction or 0)) / batch))
    epochs = int(np.clip(np.ceil(500 / steps), 30, 150))
    patience = max(10, epochs // 3)
    notes.append(f"batches of {batch}, up to {epochs} epochs, patience {patience}")
    members = 3 if n < 500 else 1
    if members > 1:
        notes.append(f"{members} members (seeds {seed}-{seed + members - 1}) averaged: small data")
    median = float(np.median(np.asarray(lengths)))
    stride = max(1, int(np.ceil(median / 64)))
    augment = "jitter+scaling+slicing" if n < 1000 else "none"
    weights = max(counts) > 1.5 * min(counts)
    if weights:
        notes.append(f"class weights: classes of {min(counts)} to {max(counts)} examples")
    # the default number of kernels, of about 9 weights each
    cost = float(np.sum(lengths)) * ClassifierConfig.rocket_kernels * 9
    blend = "rocket" if cost <= ROCKET_BUDGET else "none"
    if blend == "none":
        notes.append(f"blend: none (ROCKET's features would take about {cost:.0e} operations)")
    elif val_fraction is None:
        notes.append("blend: ROCKET, but no validation examples to weigh it: the network alone")
    else:
        notes.append("blend: ROCKET's probabilities mixed in, the weight chosen on validation")
    options = {
        "front_end": "conv",
        "stride": stride,
        "augment": augment,
        "members": members,
        "blend": blend,
    }
    training = TrainConfig(max_epochs=epochs, patience=patience, batch_size=batch, seed=seed)
    return ClassifierPlan(options, training, val_fraction, weights, tuple(notes))


# ---------------------------------------------------------------------- splits, metrics, data


def split_indices(
    labels: Sequence[Label], fraction: float, seed: int = 0, name: str = "fraction"
) -> tuple[np.ndarray, np.ndarray]:
    """A seeded split stratified by label: ``(kept, held_out)`` row indices, ``held_out``
    about ``fraction`` of the rows with each class in proportion (``name``: for errors)."""
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)):
        raise TypeError(f"{name}: expected a float in (0, 1), got {type(fraction).__name__}")
    if not 0 < fraction < 1:
        raise ValueError(f"{name}: expected a float in (0, 1), got {fraction}")
    rows = np.arange(len(labels))
    try:
        kept, held = train_test_split(
            rows, test_size=fraction, stratify=list(labels), random_state=seed
        )
    except ValueError as error:  # too few examples of a class for both parts
        raise ValueError(f"{name}: cannot split {len(rows)} examples by class: {error}") from None
    return np.sort(kept), np.sort(held)


def classification_metrics(
    truth: Sequence[Label], predictions: Sequence[Label], classes: Sequence[Label]
) -> dict[str, Any]:
    """Accuracy, macro-F1 and the ``(C, C)`` confusion matrix (rows: truth) over ``classes``."""
    classes = list(classes)
    return {
        "accuracy": float(accuracy_score(truth, predictions)),
        "macro_f1": float(
            f1_score(truth, predictions, labels=classes, average="macro", zero_division=0)
        ),
        "confusion_matrix": confusion_matrix(truth, predictions, labels=classes),
    }


def tfidf_baseline(
    train_texts: Sequence[str],
    train_labels: Sequence[Label],
    test_texts: Sequence[str],
    test_labels: Sequence[Label],
) -> dict[str, Any]:
    """TF-IDF of word uni- and bigrams + logistic regression (scikit-learn defaults
    otherwise), fitted on the training texts; metrics as :meth:`SequenceClassifier.evaluate`."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    train_values = _labels(train_labels, len(train_texts))
    test_values = _labels(test_labels, len(test_texts))
    classes = _classes(train_values)
    _check_known(test_values, classes)
    pipeline = make_pipeline(
        TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True), LogisticRegression(max_iter=1000)
    )
    pipeline.fit(list(train_texts), train_values)
    return classification_metrics(test_values, pipeline.predict(list(test_texts)).tolist(), classes)


def read_labelled_csv(
    path: str | Path, text_column: str = "text", label_column: str = "label"
) -> tuple[list[str], list[Label]]:
    """Texts and labels of a CSV file, every cell read as text (``"NA"`` stays ``"NA"``);
    a label column of integers only gives int labels."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"data: no such file {str(path)!r}")
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        columns = reader.fieldnames or []
        for option, column in (("text_column", text_column), ("label_column", label_column)):
            if column not in columns:
                raise ValueError(
                    f"{option}: {column!r} is not a column of {path.name} (columns: "
                    f"{', '.join(columns)})"
                )
        rows = [(row[text_column], row[label_column]) for row in reader]
    if not rows:
        raise ValueError(f"data: {path.name} has no rows")
    texts = [text or "" for text, _ in rows]
    labels: list[Label] = [(label or "").strip() for _, label in rows]
    if all(str(v).lstrip("-").isdigit() for v in labels):
        labels = [int(v) for v in labels]
    return texts, labels


def load_sentiment() -> tuple[list[str], list[int]]:
    """The bundled 3,000 review sentences and their labels (0 negative, 1 positive)."""
    texts, labels = read_labelled_csv(dataset_path("sentiment"))
    return texts, [int(v) for v in labels]


def load_digit_rows() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8x8 digits read row by row: pixels ``(1797, L=8, F=8)`` in [0, 1]
    and digits ``(1797,)``."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    return digits.images / 16.0, digits.target
