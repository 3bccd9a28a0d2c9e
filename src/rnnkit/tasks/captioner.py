"""Captioner: describe an image in words with a CNN encoder and a recurrent decoder.

A small convolutional encoder (:class:`rnnkit.nn.ConvEncoder`) turns an image ``(H, W)``
into a feature map of ``P = H' * W'`` positions. The decoder, a recurrent layer of any
rnnkit cell, starts from a state computed from the whole map (a linear map of it, squashed
by ``tanh``, for every state tensor of every layer) and, at every word, attends to the map's
positions (Luong et al. 2015 global attention, with a learned embedding of each position so
that *where* a feature sits can be read); a linear head on ``tanh(W [output; context])``
predicts the next word (the "show, attend and tell" recipe, Xu et al. 2015).

Training is teacher-forced: the decoder reads ``<bos> w_1 ... w_n`` and learns to predict
``w_1 ... w_n <eos>`` (cross-entropy, padding ignored). Captioning decodes with
:mod:`rnnkit.tasks._decoding`: greedy, or beam search with length normalisation. Words are
the whitespace-separated tokens of the captions; the vocabulary is the training captions'.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from rnnkit.checks import check_choice, check_int, check_rate
from rnnkit.data.text import PAD, UNK, Vocabulary, pad_batch
from rnnkit.nn import LAYERS, ConvEncoder, make_layer
from rnnkit.tasks._base import Task, build_network
from rnnkit.tasks._decoding import beam_search, greedy_decode
from rnnkit.tasks.ctc import check_images, edit_distance
from rnnkit.train import History, TrainConfig, train

TASK = "captioner"
BOS, EOS = "<bos>", "<eos>"
SPECIALS = (PAD, UNK, BOS, EOS)  # indices 0-3


@dataclass
class CaptionerConfig:
    """The captioner's size.

    Attributes:
        channels, pools: the convolutional blocks (see :class:`rnnkit.nn.ConvEncoder`).
        cell: the decoder, a layer name from :data:`rnnkit.nn.LAYERS`.
        hidden_size, num_layers: the decoder's sizes.
        embedding_size: width of the learned word vectors.
        dropout: on the image features, the word vectors and before the head.
    """

    channels: tuple[int, ...] = (32, 64)
    pools: tuple[tuple[int, int], ...] = ((2, 2), (2, 2))
    cell: str = "lstm"
    hidden_size: int = 128
    num_layers: int = 1
    embedding_size: int = 32
    dropout: float = 0.1

    def __post_init__(self) -> None:
        self.channels = tuple(self.channels)
        self.pools = tuple(tuple(p) for p in self.pools)  # type: ignore[misc]
        check_choice("cell", self.cell, tuple(sorted(LAYERS)))
        for name in ("hidden_size", "num_layers", "embedding_size"):
            check_int(name, getattr(self, name))
        check_rate("dropout", self.dropout)
        ConvEncoder(1, self.channels, self.pools)  # checks channels and pools


class CaptionNetwork(nn.Module):
    """Images ``(N, H, W)`` and word ids ``(N, L)`` -> next-word logits ``(N, L, V)``."""

    def __init__(self, shape: tuple[int, int], vocab_size: int, config: CaptionerConfig) -> None:
        super().__init__()
        self.conv = ConvEncoder(1, config.channels, config.pools)
        channels, height, width = self.conv.output_shape(*shape)
        self.decoder = make_layer(
            config.cell,
            config.embedding_size,
            config.hidden_size,
            num_layers=config.num_layers,
            dropout=config.dropout if config.num_layers > 1 else 0.0,
            batch_first=True,
        )
        sizes = self.decoder.state_sizes  # S_k
        self.splits = [config.num_layers * s for s in sizes]
        self.initial_state = nn.Linear(channels * height * width, sum(self.splits))
        self.memory = nn.Linear(channels, sizes[0])  # one key (= value) per map position
        self.positions = nn.Parameter(0.1 * torch.randn(height * width, sizes[0]))  # (P, S_0)
        self.embedding = nn.Embedding(vocab_size, config.embedding_size, padding_idx=0)
        self.dropout = nn.Dropout(config.dropout)
        self.combine = nn.Linear(2 * sizes[0], sizes[0])
        self.head = nn.Linear(sizes[0], vocab_size)

    def encode(self, images: Tensor) -> tuple[Tensor, Any]:
        """The memory the decoder attends to, ``(N, P, S_0)`` for the ``P = H' * W'``
        positions of the feature map, and the decoder's initial state: a tensor
        ``(num_layers, N, S_0)`` for one-tensor states, else a tuple of ``(num_layers, N,
        S_k)``."""
        features = self.dropout(self.conv(images.unsqueeze(1)))  # (N, C', H', W')
        state = torch.tanh(self.initial_state(features.flatten(1)))  # (N, sum(splits))
        parts = tuple(
            part.reshape(len(images), self.decoder.num_layers, -1).transpose(0, 1).contiguous()
            for part in state.split(self.splits, dim=1)
        )  # each (num_layers, N, S_k)
        memory = self.memory(features.flatten(2).transpose(1, 2)) + self.positions  # (N, P, S_0)
        return memory, parts[0] if len(parts) == 1 else parts

    def decode(self, ids: Tensor, memory: Tensor, state: Any) -> tuple[Tensor, Any]:
        """Word ids ``(N, L)``, the ``memory`` ``(N, P, S_0)`` and the decoder ``state`` ->
        next-word logits ``(N, L, V)`` and the new state.

        Each step's output attends to the memory (Luong et al. 2015, dot score scaled by
        ``sqrt(S_0)``); the head reads ``tanh(W [output; context])``.
        """
        output, state = self.decoder(self.dropout(self.embedding(ids)), state)  # (N, L, S_0)
        scores = output @ memory.transpose(1, 2) / memory.shape[-1] ** 0.5  # (N, L, P)
        context = torch.softmax(scores, dim=-1) @ memory  # (N, L, S_0)
        attended = torch.tanh(self.combine(torch.cat([output, context], dim=-1)))  # (N, L, S_0)
        return self.head(self.dropout(attended)), state

    def forward(self, images: Tensor, ids: Tensor) -> Tensor:
        return self.decode(ids, *self.encode(images))[0]


def _caption_loss(network: nn.Module, batch: tuple[Tensor, Tensor, Tensor]) -> Tensor:
    images, inputs, targets = batch  # (N, H, W), (N, L), (N, L)
    logits = network(images, inputs)  # (N, L, V)
    return nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=0)


def _collate(items: list[tuple[Tensor, list[int]]]) -> tuple[Tensor, Tensor, Tensor]:
    """``(image, word ids)`` pairs -> images ``(N, H, W)``, ``<bos>`` + words and words +
    ``<eos>``, both ``(N, L)`` padded with 0."""
    images, words = zip(*items, strict=True)
    inputs, _ = pad_batch([[SPECIALS.index(BOS), *w] for w in words])
    targets, _ = pad_batch([[*w, SPECIALS.index(EOS)] for w in words])
    return torch.stack(images), inputs, targets


def _swap_batch(state: Any) -> Any:
    """Swap dims 0 and 1 of the state's tensors: the layer keeps the batch in dim 1, the
    decoders in dim 0."""
    if isinstance(state, Tensor):
        return state.transpose(0, 1)
    return tuple(s.transpose(0, 1) for s in state)


@dataclass
class _Fitted:
    vocabulary: Vocabulary
    shape: tuple[int, int]  # (H, W) of the images
    mean: float
    std: float
    max_length: int  # decoding limit: the longest training caption + 2 words
    history: History = field(default_factory=History)
    metadata: dict[str, Any] = field(default_factory=dict)


class Captioner(Task[_Fitted, CaptionNetwork]):
    """Fit, caption, evaluate, save and load an image captioner.

    Example:
        >>> from rnnkit.data.digits import caption_grids, load_digit_split
        >>> train_digits, test_digits = load_digit_split()
        >>> images, captions = caption_grids(train_digits, 8000)
        >>> model = Captioner(hidden_size=128)
        >>> history = model.fit(images, captions)                           # doctest: +SKIP
        >>> model.predict(caption_grids(test_digits, 2)[0], beam_size=4)    # doctest: +SKIP
        ['two digits: four one', 'one digit: seven']
    """

    task = TASK
    config_type = CaptionerConfig
    config: CaptionerConfig
    # what docs/experiments/vision.md measured on the digit grids (the slow quality test)
    default_training = TrainConfig(max_epochs=15, patience=3, learning_rate=5e-3)

    def fit(
        self,
        images: np.ndarray,
        captions: Sequence[str],
        val_fraction: float = 0.1,
        log_dir: str | Path | None = None,
        progress: bool = True,
        trainer: Any = None,
        resume: bool = False,
    ) -> History:
        """Train on ``images`` ``(N, H, W)`` and their ``N`` captions; a seeded
        ``val_fraction`` of them is held out for early stopping. ``log_dir``, ``progress``,
        ``trainer`` and ``resume`` are :func:`rnnkit.train.train`'s."""
        array = check_images(images)
        words = _words(captions, len(array))
        if check_rate("val_fraction", val_fraction) == 0:
            raise ValueError(f"val_fraction: expected a float in (0, 1), got {val_fraction}")
        if len(array) < 2:
            raise ValueError("images: expected at least 2 (training and validation), got 1")
        ConvEncoder(1, self.config.channels, self.config.pools).output_shape(*array.shape[1:])
        built = Vocabulary.build(words)
        self._fitted = _Fitted(
            Vocabulary((*SPECIALS, *built.tokens[2:])),
            array.shape[1:],
            float(array.mean()),
            float(array.std()) or 1.0,
            max(map(len, words)) + 2,
        )
        x, ids = self._tensors(array), [self.vocabulary.encode(w) for w in words]
        rows = np.random.default_rng(self.training.seed).permutation(len(array))
        held = max(1, round(len(array) * val_fraction))
        train_set, val_set = ([(x[i], ids[i]) for i in part] for part in (rows[held:], rows[:held]))
        torch.manual_seed(self.training.seed)
        self.network = CaptionNetwork(self._fitted.shape, len(self.vocabulary), self.config)
        history = train(
            self.network,
            _caption_loss,
            train_set,
            val_set,
            self.training,
            log_dir,
            progress,
            trainer,
            collate_fn=_collate,
            resume=resume,
        )
        self._fitted.history = history
        return history

    def predict(
        self,
        images: np.ndarray,
        beam_size: int = 1,
        length_penalty: float = 0.6,
        max_length: int | None = None,
    ) -> list[str]:
        """A caption for each image ``(N, H, W)``: greedy for ``beam_size=1``, else beam
        search (``length_penalty``: see :func:`rnnkit.tasks._decoding.beam_search`), at most
        ``max_length`` words (default: the longest training caption + 2)."""
        network, fitted = self._require_network(), self._require_fitted()
        check_int("beam_size", beam_size)
        limit = fitted.max_length if max_length is None else check_int("max_length", max_length)
        x = self._tensors(check_images(images, *fitted.shape))
        banned = [SPECIALS.index(t) for t in (PAD, UNK, BOS)]

        def step(tokens: Tensor, state: dict[str, Any]) -> tuple[Tensor, dict[str, Any]]:
            memory, layer_state = state["memory"], _swap_batch(state["layer"])
            logits, layer_state = network.decode(tokens.unsqueeze(1), memory, layer_state)
            logits[:, 0, banned] = -torch.inf  # (N, 1, V); these are never emitted
            return torch.log_softmax(logits[:, 0], -1), {
                "memory": memory,
                "layer": _swap_batch(layer_state),
            }

        bos, eos = SPECIALS.index(BOS), SPECIALS.index(EOS)
        network.eval()
        captions = []
        with torch.no_grad():
            for start in range(0, len(x), 256):
                memory, layer_state = network.encode(x[start : start + 256])
                state = {"memory": memory, "layer": _swap_batch(layer_state)}  # batch in dim 0
                if beam_size == 1:
                    chosen = greedy_decode(step, state, bos, eos, limit)
                else:
                    chosen = beam_search(step, state, bos, eos, beam_size, limit, length_penalty)
                captions += [" ".join(self.vocabulary.decode(ids)) for ids in chosen]
        return captions

    def evaluate(
        self, images: np.ndarray, captions: Sequence[str], beam_size: int = 1
    ) -> dict[str, float]:
        """``{"exact_match", "word_error_rate"}``: the share of captions produced exactly,
        and the word edit distance over the number of true words."""
        words = _words(captions, None)
        unknown = sorted({w for caption in words for w in caption} - set(self.vocabulary.tokens))
        if unknown:
            raise ValueError(
                f"captions: words not in the model's vocabulary: {', '.join(map(repr, unknown))}"
            )
        predicted = [p.split() for p in self.predict(images, beam_size)]
        if len(predicted) != len(words):
            raise ValueError(
                f"captions: expected one caption per image (N = {len(predicted)}), got {len(words)}"
            )
        pairs = list(zip(words, predicted, strict=True))
        errors = sum(edit_distance(truth, guess) for truth, guess in pairs)
        return {
            "exact_match": float(np.mean([truth == guess for truth, guess in pairs])),
            "word_error_rate": errors / sum(map(len, words)),
        }

    def _tensors(self, images: np.ndarray) -> Tensor:
        fitted = self._require_fitted()
        return torch.from_numpy(((images - fitted.mean) / fitted.std).astype(np.float32))

    def save(self, directory: str | Path, metadata: dict[str, Any] | None = None) -> Path:
        """Write weights (safetensors) and config, vocabulary, image shape and scaling,
        curves and ``metadata`` (JSON) to ``directory``."""
        fitted = self._require_fitted()
        fitted_state = {
            "vocabulary": list(fitted.vocabulary.tokens),
            "shape": list(fitted.shape),
            "mean": fitted.mean,
            "std": fitted.std,
            "max_length": fitted.max_length,
        }
        return self._save(directory, fitted_state, metadata)

    @classmethod
    def load(cls, directory: str | Path) -> Captioner:
        """Rebuild a captioner saved with :meth:`save`."""
        model, state, weights = cls._read(directory)
        model._fitted = _Fitted(
            Vocabulary(tuple(state["vocabulary"])),
            tuple(state["shape"]),
            state["mean"],
            state["std"],
            state["max_length"],
            History(**state["history"]),
            state["metadata"],
        )
        model.network = build_network(
            directory,
            partial(CaptionNetwork, model._fitted.shape, len(model.vocabulary), model.config),
            weights,
        )
        return model

    @property
    def vocabulary(self) -> Vocabulary:
        """The caption words (after ``<pad>``, ``<unk>``, ``<bos>``, ``<eos>``)."""
        return self._require_fitted().vocabulary


def _words(captions: Iterable[str], count: int | None) -> list[list[str]]:
    """Each caption's whitespace-separated words, checked: non-empty, no special tokens."""
    if isinstance(captions, str):
        raise TypeError("captions: expected a list of strings, got one str; wrap it in a list")
    words = []
    for i, caption in enumerate(captions):
        if not isinstance(caption, str):
            raise TypeError(f"captions[{i}]: expected a str, got {type(caption).__name__}")
        if not caption.split():
            raise ValueError(f"captions[{i}]: expected at least one word, got {caption!r}")
        special = sorted(set(caption.split()) & set(SPECIALS))
        if special:
            raise ValueError(f"captions[{i}]: {special[0]!r} is reserved for the decoder")
        words.append(caption.split())
    if count is not None and len(words) != count:
        raise ValueError(
            f"captions: expected one caption per image (N = {count}), got {len(words)}"
        )
    if not words:
        raise ValueError("captions: expected at least one caption, got none")
    return words
