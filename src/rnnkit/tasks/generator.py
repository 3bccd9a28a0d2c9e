"""Generator: one-to-many, a character-level language model with any rnnkit cell.

An embedding feeds a recurrent layer whose output a linear head maps to next-character
logits. Training reads contiguous chunks of ``sequence_length`` characters and learns to
predict each next character (cross-entropy); the validation part is the *end* of the text
(a chronological split), so it measures continuation of unseen text.

Generation is autoregressive: the prompt is read once, then each chosen character is fed
back one step at a time with the layer's state carried along, so producing ``n``
characters costs ``n`` steps, never a re-run of the growing prefix.
"""

from __future__ import annotations

import hashlib
import math
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset, TensorDataset

from rnnkit.checks import (
    check_bool,
    check_choice,
    check_int,
    check_positive_float,
    check_rate,
)
from rnnkit.data.corpus import DiskChunks, encode_corpus, read_vocabulary
from rnnkit.data.text import Vocabulary
from rnnkit.nn import LAYERS, detach_state, make_layer
from rnnkit.preprocess import char_tokens
from rnnkit.tasks._base import Task, build_network
from rnnkit.train import History, train
from rnnkit.train.distributed import written_by_rank_zero

TASK = "generator"
# evaluate(): at most 16 parallel streams of at least 4096 characters, 512 steps per forward
_EVAL_STREAMS, _EVAL_SEGMENT, _EVAL_WINDOW = 16, 4096, 512


@dataclass
class GeneratorConfig:
    """How big the language model is and what one training example is.

    Attributes:
        cell: a layer name from :data:`rnnkit.nn.LAYERS`.
        hidden_size, num_layers: the recurrent layer's sizes.
        embedding_size: width of the learned character vectors.
        sequence_length: characters per training chunk (the steps gradients flow back).
        dropout: on the recurrent output before the head, and between stacked layers.
        carry_state: train on the text as ``batch_size`` parallel streams read in order,
            each chunk starting from the state the previous one left (truncated
            backpropagation through time), as evaluation and generation read text; False:
            chunks in random order, each from the zero state.
    """

    cell: str = "lstm"
    hidden_size: int = 256
    num_layers: int = 1
    embedding_size: int = 64
    sequence_length: int = 100
    dropout: float = 0.0
    carry_state: bool = False

    def __post_init__(self) -> None:
        check_choice("cell", self.cell, tuple(sorted(LAYERS)))
        check_bool("carry_state", self.carry_state)
        for name in ("hidden_size", "num_layers", "embedding_size", "sequence_length"):
            check_int(name, getattr(self, name))
        check_rate("dropout", self.dropout)


class GeneratorNetwork(nn.Module):
    """Character ids ``(N, L)`` -> next-character logits ``(N, L, V)`` and the final state."""

    def __init__(self, vocab_size: int, config: GeneratorConfig) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, config.embedding_size)
        stacked = {"dropout": config.dropout} if config.num_layers > 1 else {}
        self.layer = make_layer(
            config.cell,
            config.embedding_size,
            config.hidden_size,
            num_layers=config.num_layers,
            batch_first=True,
            **stacked,
        )
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(self.layer.state_sizes[0], vocab_size)

    def forward(self, ids: Tensor, state: Any = None) -> tuple[Tensor, Any]:
        """``state`` is the layer's (None for zeros); the returned one continues the text."""
        output, state = self.layer(self.embedding(ids), state)  # (N, L, H_out)
        return self.head(self.dropout(output)), state  # (N, L, V)


@dataclass
class _Fitted:
    vocabulary: Vocabulary
    history: History = field(default_factory=History)
    metadata: dict[str, Any] = field(default_factory=dict)


class Generator(Task[_Fitted, GeneratorNetwork]):
    """Fit, evaluate, sample from, save and load a character-level language model.

    Example:
        >>> from rnnkit.data import load_text
        >>> model = Generator(hidden_size=128, training=TrainConfig(max_epochs=2))
        >>> history = model.fit(load_text("shakespeare"))                  # doctest: +SKIP
        >>> model.sample("ROMEO:", 200, temperature=0.8, seed=0)           # doctest: +SKIP
    """

    task = TASK
    config_type = GeneratorConfig
    config: GeneratorConfig

    # ------------------------------------------------------------------ training

    def fit(
        self,
        text: str,
        val_fraction: float = 0.1,
        log_dir: str | Path | None = None,
        progress: bool = True,
        trainer: Any = None,
        resume: bool = False,
    ) -> History:
        """Train on ``text``; its last ``val_fraction`` is the validation part.

        Both parts are cut into consecutive chunks of ``sequence_length`` characters whose
        targets are the characters one step later. Training batches draw chunks at random,
        each read from the zero state (with ``carry_state``, they read the training part
        as the validation part is read). Validation reads its part as ``batch_size``
        parallel streams, carrying each stream's state from one chunk into the next, so the
        validation loss (which picks the restored epoch) is that of :meth:`evaluate`, which
        reads text as generation does. ``log_dir``, ``progress``, ``trainer`` and ``resume``
        are :func:`rnnkit.train.train`'s. The vocabulary is the character set of
        the whole ``text`` (a closed alphabet, so a character first seen in the validation
        part is still a valid, if unlikely, prediction); every probability is learnt from
        the training part only.
        """
        length = self.config.sequence_length
        train_text, val_text = split_text(text, val_fraction)
        self._check_parts("text", len(text), len(train_text), val_fraction)
        self._fitted = _Fitted(Vocabulary.build([char_tokens(text)]))
        batch, carry = self.training.batch_size, self.config.carry_state
        train_ids = self._encode("text", train_text)
        train_set = _streams(train_ids, length, batch) if carry else _chunks(train_ids, length)
        val_set = _streams(self._encode("text", val_text), length, batch)
        return self._train(train_set, val_set, log_dir, progress, trainer, resume)

    def fit_file(
        self,
        path: str | Path,
        val_fraction: float = 0.1,
        log_dir: str | Path | None = None,
        progress: bool = True,
        trainer: Any = None,
        resume: bool = False,
    ) -> History:
        """:meth:`fit` on the UTF-8 text file ``path`` without reading it into memory: the
        same vocabulary, split, chunks and streams, read from disk a batch at a time.

        The characters are encoded once into ``corpus-<digest>.npy`` (and its vocabulary
        ``.json``; :func:`rnnkit.data.corpus.encode_corpus`) in ``log_dir``, or in a
        temporary folder removed after training without one; the digest names the file's
        path, size and modification time, so a changed file is encoded again. Under DDP
        with a ``log_dir``, global rank 0 encodes it and the other processes read its file.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"path: {str(path)!r} is not a file")
        _split_point(1, val_fraction)  # a bad val_fraction fails before the file is encoded
        if log_dir is None:
            with tempfile.TemporaryDirectory(prefix="rnnkit-corpus-") as folder:
                return self.fit_file(path, val_fraction, folder, progress, trainer, resume)
        stat = path.stat()
        digest = hashlib.sha256(
            repr((str(path.resolve()), stat.st_size, stat.st_mtime_ns)).encode()
        )
        encoded = Path(log_dir) / f"corpus-{digest.hexdigest()[:32]}.npy"
        if written_by_rank_zero(encoded, self.training.ddp_timeout) or encoded.is_file():
            vocabulary = read_vocabulary(encoded)
        else:
            vocabulary, _ = encode_corpus(path, encoded)
        count = DiskChunks(encoded, 1).rows.count  # characters
        start, length = _split_point(count, val_fraction), self.config.sequence_length
        self._check_parts("path", count, start, val_fraction)
        self._fitted = _Fitted(vocabulary)
        batch, carry = self.training.batch_size, self.config.carry_state
        train_set = DiskChunks(encoded, length, stop=start, streams=batch if carry else None)
        val_set = DiskChunks(encoded, length, start=start, streams=batch)
        return self._train(train_set, val_set, log_dir, progress, trainer, resume)

    def _check_parts(self, name: str, count: int, start: int, val_fraction: float) -> None:
        """A one-line error naming ``name`` unless the training part (``start`` of the
        ``count`` characters) and the validation part each exceed ``sequence_length``."""
        length = self.config.sequence_length
        if min(start, count - start) <= length:
            raise ValueError(
                f"{name}: {count} characters are too few: the training part ({start}) and the "
                f"validation part ({count - start}, val_fraction {val_fraction}) each need "
                f"at least sequence_length + 1 = {length + 1}"
            )

    def _train(
        self,
        train_set: Dataset,
        val_set: Dataset,
        log_dir: str | Path | None,
        progress: bool,
        trainer: Any,
        resume: bool,
    ) -> History:
        """Build the network for the fitted vocabulary and train it on the chunks."""
        torch.manual_seed(self.training.seed)
        self.network = GeneratorNetwork(len(self.vocabulary), self.config)
        history = train(
            self.network,
            _NextCharLoss(),
            train_set,
            val_set,
            self.training,
            log_dir,
            progress,
            trainer,
            resume=resume,
            shuffle=not self.config.carry_state,
        )
        self._fitted.history = history
        return history

    # ------------------------------------------------------------------ inference

    def evaluate(self, text: str) -> dict[str, float]:
        """Mean negative log-likelihood of each character of ``text`` after the first.

        The text is read as a stream with the state carried along, as generation reads it
        (a long text in up to 16 contiguous segments of at least 4096 characters, read in
        parallel, each from the zero state).

        Returns:
            ``{"loss_nats_per_char", "bits_per_char", "characters"}`` (characters scored).
        """
        network = self._require_network()
        ids = torch.tensor(self._encode("text", text))
        if len(ids) < 2:
            raise ValueError(f"text: expected at least 2 characters, got {len(ids)}")
        inputs, targets = ids[:-1], ids[1:]  # (T,)
        streams = max(1, min(_EVAL_STREAMS, len(inputs) // _EVAL_SEGMENT))
        width = math.ceil(len(inputs) / streams)
        pad = streams * width - len(inputs)
        inputs = torch.cat([inputs, inputs.new_zeros(pad)]).view(streams, width)  # (N, W)
        targets = torch.cat([targets, targets.new_full((pad,), -100)]).view(streams, width)
        total, state = 0.0, None
        network.eval()
        with torch.no_grad():
            for start in range(0, width, _EVAL_WINDOW):
                window = slice(start, start + _EVAL_WINDOW)
                logits, state = network(inputs[:, window], state)  # (N, <= 512, V)
                total += float(
                    nn.functional.cross_entropy(
                        logits.flatten(0, 1), targets[:, window].flatten(), reduction="sum"
                    )
                )
        nats = total / (len(ids) - 1)
        return {
            "loss_nats_per_char": nats,
            "bits_per_char": nats / math.log(2),
            "characters": len(ids) - 1,
        }

    def sample(
        self,
        prompt: str,
        length: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        seed: int | None = None,
    ) -> str:
        """Continue ``prompt`` with ``length`` sampled characters (the prompt not included).

        Args:
            temperature: logits are divided by it; below 1 sharpens, towards 0 approaches
                greedy decoding.
            top_k: sample only among the ``top_k`` most likely characters (1 is greedy).
            seed: seeds a private random generator (None: torch's global one).
        """
        check_int("length", length)
        temperature = check_positive_float("temperature", temperature)
        if top_k is not None:
            check_int("top_k", top_k)
        generator = None if seed is None else torch.Generator().manual_seed(seed)

        def choose(logits: Tensor) -> int:
            logits = logits / temperature
            if top_k is not None and top_k < len(logits):
                kept, indices = logits.topk(top_k)
                logits = torch.full_like(logits, -math.inf).scatter(0, indices, kept)
            probabilities = torch.softmax(logits, dim=0)
            return int(torch.multinomial(probabilities, 1, generator=generator))

        return self._generate(prompt, "prompt", length, choose, stop="")

    def complete(self, prefix: str, max_length: int = 50, stop: str = " \n") -> str:
        """Greedy continuation of ``prefix`` up to (not including) the first character in
        ``stop``, or ``max_length`` characters (``stop=""`` never stops early)."""
        check_int("max_length", max_length)
        if not isinstance(stop, str):
            raise TypeError(f"stop: expected a str of stop characters, got {type(stop).__name__}")
        return self._generate(prefix, "prefix", max_length, lambda x: int(x.argmax()), stop)

    def predict_next(self, prefix: str, top_k: int | None = 5) -> dict[str, float]:
        """The ``top_k`` most likely next characters (None: all) and their probabilities,
        most likely first; the distribution :meth:`sample` draws from at temperature 1."""
        if top_k is not None:
            check_int("top_k", top_k)
        network, vocabulary = self._require_network(), self.vocabulary
        network.eval()
        with torch.no_grad():
            logits, _ = network(torch.tensor([self._encode("prefix", prefix, empty=False)]))
        probabilities = torch.softmax(self._characters_only(logits[0, -1]), dim=0)
        count = len(vocabulary) - 2 if top_k is None else min(top_k, len(vocabulary) - 2)
        values, indices = probabilities.topk(count)
        return dict(zip(vocabulary.decode(indices.tolist()), values.tolist(), strict=True))

    def _generate(
        self, prompt: str, name: str, length: int, choose: Callable[[Tensor], int], stop: str
    ) -> str:
        """Read ``prompt`` once, then feed back each chosen character one step at a time."""
        network, tokens = self._require_network(), self.vocabulary.tokens
        ids = self._encode(name, prompt, empty=False)
        network.eval()
        chosen: list[str] = []
        with torch.no_grad():
            logits, state = network(torch.tensor([ids]))  # (1, len(prompt), V)
            for _ in range(length):
                index = choose(self._characters_only(logits[0, -1]))
                if tokens[index] in stop:
                    break
                chosen.append(tokens[index])
                logits, state = network(torch.tensor([[index]]), state)  # (1, 1, V)
        return "".join(chosen)

    def _characters_only(self, logits: Tensor) -> Tensor:
        """``(V,)`` logits with ``<pad>`` and ``<unk>`` ruled out (they are not characters)."""
        vocabulary = self.vocabulary
        logits = logits.clone()
        logits[[vocabulary.pad_index, vocabulary.unk_index]] = -math.inf
        return logits

    def _encode(self, name: str, text: str, empty: bool = True) -> list[int]:
        """Character ids of ``text``; unknown characters (and, unless ``empty``, an empty
        text) are errors naming ``name``."""
        if not isinstance(text, str):
            raise TypeError(f"{name}: expected a str, got {type(text).__name__}")
        if not text and not empty:
            raise ValueError(f"{name}: expected at least 1 character, got ''")
        vocabulary = self.vocabulary
        unknown = sorted({c for c in text if c not in vocabulary})
        if unknown:
            shown = ", ".join(map(repr, unknown[:10]))
            more = f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""
            raise ValueError(f"{name}: characters not in the model's vocabulary: {shown}{more}")
        return vocabulary.encode(char_tokens(text))

    # ------------------------------------------------------------------ files

    def save(self, directory: str | Path, metadata: dict[str, Any] | None = None) -> Path:
        """Write weights (safetensors) and config, vocabulary, curves and ``metadata``
        (JSON: e.g. where the text came from) to ``directory``."""
        fitted = self._require_fitted()
        fitted_state = {
            "vocabulary": list(fitted.vocabulary.tokens),
        }
        return self._save(directory, fitted_state, metadata)

    @classmethod
    def load(cls, directory: str | Path) -> Generator:
        """Rebuild a generator saved with :meth:`save`."""
        model, state, weights = cls._read(directory)
        vocabulary = Vocabulary(tuple(state["vocabulary"]))
        model._fitted = _Fitted(vocabulary, History(**state["history"]), state["metadata"])
        model.network = build_network(
            directory, partial(GeneratorNetwork, len(vocabulary), model.config), weights
        )
        return model

    @property
    def vocabulary(self) -> Vocabulary:
        return self._require_fitted().vocabulary


def split_text(text: str, val_fraction: float = 0.1) -> tuple[str, str]:
    """``text`` -> (first part, last ``val_fraction`` of it): a chronological split."""
    if not isinstance(text, str):
        raise TypeError(f"text: expected a str, got {type(text).__name__}")
    if not text:
        raise ValueError("text: expected at least 1 character, got ''")
    start = _split_point(len(text), val_fraction)
    return text[:start], text[start:]


def _split_point(count: int, val_fraction: float) -> int:
    """Where the last ``val_fraction`` of ``count`` characters begins; a one-line error for a
    ``val_fraction`` outside (0, 1)."""
    if check_rate("val_fraction", val_fraction) == 0:
        raise ValueError(f"val_fraction: expected a float in (0, 1), got {val_fraction}")
    return count - round(count * val_fraction)


def unigram_loss(train_text: str, text: str) -> float:
    """Nats per character of ``text`` under the character frequencies of ``train_text``
    (add-one smoothed over the characters of both): the baseline that ignores context."""
    counts = Counter(train_text)
    alphabet = set(train_text) | set(text)
    total = len(train_text) + len(alphabet)
    return -sum(math.log((counts[c] + 1) / total) for c in text) / len(text)


def _chunks(ids: list[int], length: int) -> TensorDataset:
    """Non-overlapping chunks: inputs ``(M, length)`` and next characters ``(M, length)``."""
    count = (len(ids) - 1) // length
    data = torch.tensor(ids[: count * length + 1])
    inputs = data[:-1].view(count, length)
    targets = data[1:].view(count, length)
    return TensorDataset(inputs, targets)


def _streams(ids: list[int], length: int, streams: int) -> TensorDataset:
    """The text as ``streams`` contiguous parts read a chunk at a time: ordered so that batch
    ``k`` of ``streams`` rows holds chunk ``k`` of every part. Inputs and next characters
    ``(M, length)``, and ``starts`` ``(M,)``: True on each part's first chunk. With fewer
    than ``streams`` chunks, each chunk is a part of its own."""
    inputs, targets = _chunks(ids, length).tensors
    streams = min(streams, len(inputs))
    per_stream = len(inputs) // streams
    order = torch.arange(streams * per_stream).view(streams, per_stream).t().flatten()
    starts = torch.arange(streams * per_stream) < streams  # (M,): batch 0
    return TensorDataset(inputs[order], targets[order], starts)


class _NextCharLoss:
    """Cross-entropy of the next characters of a batch. A batch ``(inputs, targets)`` is
    read from the zero state; a batch ``(inputs, targets, starts)`` continues the streams
    of the previous one of its stage, training or validation (see :func:`_streams`)."""

    def __init__(self) -> None:
        self.states: dict[bool, Any] = {True: None, False: None}  # by network.training

    def __call__(self, network: nn.Module, batch: tuple[Tensor, ...]) -> Tensor:
        inputs, targets, *starts = batch
        stage = network.training
        state = None if not starts or bool(starts[0].any()) else self.states[stage]
        logits, state = network(inputs, state)  # (N, L, V)
        if starts:
            self.states[stage] = detach_state(state)  # gradients stop at the chunk boundary
        return nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten())
