"""SequenceTagger: aligned many-to-many, one tag per input step, with any rnnkit cell.

An embedding reads token ids ``(N, L)``, a (by default bidirectional) recurrent layer reads
the padded batch with its ``lengths=``, and a linear head gives tag logits at every step
``(N, L, T)``. Padding changes nothing: the layer stops each sequence at its length and the
loss ignores padded steps (``ignore_index``), so a sequence gets the same tags alone or in
a batch.

The word-boundary task on top of it: :func:`unspace` turns ``"to be"`` into ``("tobe",
[0, 1, 0, 0])`` -- tag 1 on a character that a space followed (binary, not B/I: one
decision per character, and the positive tag is exactly the boundary the metrics count)
-- :func:`respace` inverts it, and :class:`SpaceRestorer` learns to put spaces back.
"""

from __future__ import annotations

import numbers
from collections import Counter
from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from itertools import repeat
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from rnnkit.checks import check_bool, check_choice, check_int, check_rate
from rnnkit.data.text import Vocabulary, pad_batch
from rnnkit.nn import LAYERS, make_layer
from rnnkit.tasks._base import Task, build_network
from rnnkit.train import History, TrainConfig, train

TASK = "tagger"
IGNORE = -100  # tag id of padded steps; cross_entropy skips it
_PREDICT_BATCH = 256  # sequences per forward pass in predict
Tag = int | str


# ---------------------------------------------------------------------- word boundaries


def unspace(text: str) -> tuple[str, list[int]]:
    """Remove whitespace; tag each remaining character 1 if whitespace followed it.

    Any run of whitespace is one boundary and the last character is always tagged 0, so
    ``respace(*unspace(text)) == " ".join(text.split())``: exact for text in that normal
    form (single spaces, none at either end).

    Example:
        >>> unspace("to be or")
        ('tobeor', [0, 1, 0, 1, 0, 0])
    """
    words = text.split()
    tags = [int(i == len(w) - 1) for w in words for i in range(len(w))]
    if tags:
        tags[-1] = 0
    return "".join(words), tags


def respace(chars: Sequence[str], tags: Sequence[Any]) -> str:
    """Join ``chars``, with a space after each character whose tag is truthy (never at
    the end): the inverse of :func:`unspace`."""
    if len(chars) != len(tags):
        raise ValueError(f"tags: expected {len(chars)} tags (one per character), got {len(tags)}")
    last = len(chars) - 1
    return "".join(
        c + (" " if t and i < last else "")
        for i, (c, t) in enumerate(zip(chars, tags, strict=True))
    )


def split_lines(
    text: str, val_fraction: float = 0.1, test_fraction: float = 0.1
) -> tuple[list[str], list[str], list[str], int]:
    """Non-empty lines of ``text`` (space-normalised) in three chronological blocks.

    The first ``1 - val_fraction - test_fraction`` of the lines train, the next block
    validates, the last one tests. Validation and test lines whose characters (spaces
    removed) also occur in training are dropped, so no test line was seen in training.

    Returns:
        ``(train, val, test, dropped)``; ``dropped`` counts the repeated lines removed.
    """
    check_rate("val_fraction", val_fraction)
    check_rate("test_fraction", test_fraction)
    lines = [" ".join(line.split()) for line in text.splitlines()]
    lines = [line for line in lines if line]
    val_start = round(len(lines) * (1 - val_fraction - test_fraction))
    test_start = round(len(lines) * (1 - test_fraction))
    train_part = lines[:val_start]
    if not train_part or val_start == test_start or test_start == len(lines):
        raise ValueError(
            f"text: {len(lines)} non-empty lines are too few for train/val/test fractions "
            f"{1 - val_fraction - test_fraction:.2f}/{val_fraction}/{test_fraction}"
        )
    seen = {unspace(line)[0] for line in train_part}
    held_out = [
        [line for line in part if unspace(line)[0] not in seen]
        for part in (lines[val_start:test_start], lines[test_start:])
    ]
    dropped = len(lines) - len(train_part) - sum(map(len, held_out))
    return train_part, held_out[0], held_out[1], dropped


# ---------------------------------------------------------------------- metrics, baseline


def tag_scores(
    truth: Sequence[Sequence[Tag]], predicted: Sequence[Sequence[Tag]], positive: Tag | None
) -> dict[str, float]:
    """Per-step scores over all steps of all sequences.

    Returns:
        ``accuracy``; ``precision``, ``recall`` and ``f1`` of the ``positive`` tag (macro
        averages over the tags present when ``positive`` is None); ``macro_f1`` over the
        tags in ``truth`` or ``predicted``. A ratio with a zero denominator is 0.
    """
    flat_truth = [t for s in truth for t in s]
    flat_pred = [t for s in predicted for t in s]
    if len(flat_truth) != len(flat_pred) or not flat_truth:
        raise ValueError(
            f"predicted: expected {len(flat_truth)} > 0 tags (as in truth), got {len(flat_pred)}"
        )
    pairs = Counter(zip(flat_truth, flat_pred, strict=True))
    labels = sorted({*flat_truth, *flat_pred}, key=lambda t: (type(t).__name__, t))
    per_tag = {tag: _precision_recall_f1(pairs, tag) for tag in labels}
    if positive is None:
        precision, recall, f1 = np.mean(list(per_tag.values()), axis=0).tolist()
    else:
        precision, recall, f1 = per_tag.get(positive) or _precision_recall_f1(pairs, positive)
    return {
        "accuracy": sum(n for (t, p), n in pairs.items() if t == p) / len(flat_truth),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "macro_f1": float(np.mean([scores[2] for scores in per_tag.values()])),
    }


def _precision_recall_f1(pairs: Counter, tag: Tag) -> tuple[float, float, float]:
    hits = pairs[(tag, tag)]
    predicted = sum(n for (_, p), n in pairs.items() if p == tag)
    actual = sum(n for (t, _), n in pairs.items() if t == tag)
    precision = hits / predicted if predicted else 0.0
    recall = hits / actual if actual else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


class WindowBaseline:
    """The majority tag of each token given its neighbours, counted in training.

    With ``left=1, right=1`` on :func:`unspace` data this is the character-bigram rule: a
    space after ``a`` when ``P(space | a, next character b) > 0.5``. Contexts unseen in
    training back off to fewer neighbours (right ones first), then to the overall majority.
    Ties go to the tag that is more frequent overall (no space, for the bigram rule).
    """

    def __init__(self, left: int = 1, right: int = 1) -> None:
        self.left, self.right = check_int("left", left), check_int("right", right, minimum=0)
        self.decisions: dict[tuple, Tag] = {}  # context -> majority tag
        self.default: Tag | None = None

    def fit(
        self, token_sequences: Sequence[Sequence[str]], tag_sequences: Sequence[Sequence[Tag]]
    ) -> WindowBaseline:
        tag_sequences = _check_pairs(token_sequences, tag_sequences)
        pairs: Counter = Counter()  # (context, tag) -> count
        for tokens, tags in zip(token_sequences, tag_sequences, strict=True):
            for keys in self._contexts(tokens):
                pairs.update(zip(keys, tags, strict=True))
        counts: dict[tuple, Counter] = {}
        for (key, tag), n in pairs.items():
            counts.setdefault(key, Counter())[tag] = n
        overall = Counter(t for s in tag_sequences for t in s)
        rank = {tag: -n for tag, n in overall.items()}
        self.default = min(rank, key=rank.get)
        self.decisions = {
            key: min(found, key=lambda t: (-found[t], rank[t])) for key, found in counts.items()
        }
        return self

    def predict(self, token_sequences: Sequence[Sequence[str]]) -> list[list[Tag]]:
        if not self.decisions:
            raise RuntimeError("WindowBaseline: call fit() first")
        _check_tokens(token_sequences)
        out = []
        for tokens in token_sequences:
            row: list[Tag | None] = [None] * len(tokens)
            for keys in self._contexts(tokens):  # fill what wider contexts left open
                row = [
                    self.decisions.get(k) if r is None else r
                    for r, k in zip(row, keys, strict=True)
                ]
            out.append([self.default if r is None else r for r in row])
        return out

    def _contexts(self, tokens: Sequence[str]) -> Iterator[list[tuple]]:
        """Per window, widest first (right neighbours drop first), the key of every step:
        ``(window number, tokens in the window)``; None pads past either end."""
        padded = [None] * (self.left - 1) + list(tokens) + [None] * self.right
        windows = [(a, b) for a in range(self.left, 0, -1) for b in range(self.right, -1, -1)]
        for number, (left, right) in enumerate(windows):
            start = self.left - left
            columns = [padded[start + k : start + k + len(tokens)] for k in range(left + right)]
            yield list(zip(repeat(number), zip(*columns, strict=True)))


# ---------------------------------------------------------------------- the tagger


@dataclass
class TaggerConfig:
    """The network's sizes and how tokens and tags are read.

    Attributes:
        cell: a layer name from :data:`rnnkit.nn.LAYERS`.
        bidirectional: read each sequence both ways, so a step's tag can depend on later
            tokens (a word boundary depends on the next character).
        hidden_size, num_layers: the recurrent layer's sizes (``H`` per direction).
        embedding_size: features per token.
        dropout: on the embeddings, between layers and before the head, in ``[0, 1)``.
        min_count: training tokens seen fewer times become ``<unk>``; with the default 2,
            ``<unk>`` (which any token unseen in training maps to) learns from rare tokens.
        positive: the tag whose precision/recall/F1 :meth:`SequenceTagger.evaluate`
            reports; None for macro averages.
    """

    cell: str = "lstm"
    bidirectional: bool = True
    hidden_size: int = 64
    num_layers: int = 1
    embedding_size: int = 32
    dropout: float = 0.0
    min_count: int = 2
    positive: Tag | None = 1

    def __post_init__(self) -> None:
        check_choice("cell", self.cell, tuple(sorted(LAYERS)))
        check_bool("bidirectional", self.bidirectional)
        for name in ("hidden_size", "num_layers", "embedding_size", "min_count"):
            check_int(name, getattr(self, name))
        check_rate("dropout", self.dropout)
        if self.positive is not None and not isinstance(self.positive, (int, str)):
            raise TypeError(f"positive: expected an int, str or None, got {self.positive!r}")


class TaggerNetwork(nn.Module):
    """Token ids ``(N, L)`` and lengths ``(N,)`` -> tag logits ``(N, L, T)``."""

    def __init__(self, vocab_size: int, num_tags: int, config: TaggerConfig) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, config.embedding_size, padding_idx=0)
        self.layer = make_layer(
            config.cell,
            config.embedding_size,
            config.hidden_size,
            num_layers=config.num_layers,
            dropout=config.dropout if config.num_layers > 1 else 0.0,  # between layers
            bidirectional=config.bidirectional,
            batch_first=True,
        )
        self.dropout = nn.Dropout(config.dropout)
        width = self.layer.state_sizes[0] * self.layer.num_directions  # D * H_out
        self.head = nn.Linear(width, num_tags)

    def forward(self, ids: Tensor, lengths: Tensor) -> Tensor:
        x = self.dropout(self.embedding(ids))  # (N, L, E)
        if bool((lengths == ids.shape[1]).all()):
            lengths = None  # the same result, without the cost of packing
        output, _ = self.layer(x, lengths=lengths)  # (N, L, D * H_out), zeros past lengths
        return self.head(self.dropout(output))  # (N, L, T)


def _tag_loss(network: nn.Module, batch: tuple[Tensor, Tensor, Tensor]) -> Tensor:
    """Mean cross-entropy over the real (unpadded) steps of a batch."""
    ids, lengths, tags = batch
    logits = network(ids, lengths)  # (N, L, T)
    return nn.functional.cross_entropy(logits.flatten(0, 1), tags.flatten(), ignore_index=IGNORE)


Batch = tuple[Tensor, Tensor, Tensor]  # ids (N, L), lengths (N,), tag ids (N, L)


def _collate(items: list[tuple[list[int], list[int]]]) -> Batch:
    ids, lengths = pad_batch([i for i, _ in items])
    tags, _ = pad_batch([t for _, t in items], pad=IGNORE)
    return ids, lengths, tags


def _bucketed(items: list[tuple[list[int], list[int]]], batch_size: int, seed: int) -> list[Batch]:
    """Batches of at most ``batch_size`` sequences of similar length (ties in random order):
    little padding, and none (so no packing) where a batch's lengths are all equal."""
    order = torch.randperm(len(items), generator=torch.Generator().manual_seed(seed)).tolist()
    order.sort(key=lambda i: len(items[i][0]))
    chunks = [order[start : start + batch_size] for start in range(0, len(order), batch_size)]
    return [_collate([items[i] for i in chunk]) for chunk in chunks]


def _one_batch(batches: list[Batch]) -> Batch:
    return batches[0]


@dataclass
class _Fitted:
    vocabulary: Vocabulary
    tags: tuple[Tag, ...]
    history: History = field(default_factory=History)
    metadata: dict[str, Any] = field(default_factory=dict)


class SequenceTagger(Task[_Fitted, TaggerNetwork]):
    """Fit, predict, evaluate, save and load a per-step tagger of token sequences.

    A token sequence is any sequence of string tokens (a ``str`` is one: its characters);
    tags are ints or strings, one per token.

    Example:
        >>> tagger = SequenceTagger(cell="gru", hidden_size=32)
        >>> history = tagger.fit(["abc", "ba"], [[0, 0, 1], [0, 1]])   # doctest: +SKIP
        >>> tagger.predict(["cab"])                                     # doctest: +SKIP
        [[1, 0, 0]]
    """

    task = TASK
    config_type = TaggerConfig
    config: TaggerConfig

    def fit(
        self,
        token_sequences: Sequence[Sequence[str]],
        tag_sequences: Sequence[Sequence[Tag]],
        validation: tuple[Sequence[Sequence[str]], Sequence[Sequence[Tag]]] | None = None,
        val_fraction: float = 0.1,
        log_dir: str | Path | None = None,
        progress: bool = True,
        trainer: Any = None,
        resume: bool = False,
    ) -> History:
        """Train; validate on ``validation`` or else on the last ``val_fraction`` of the
        sequences (kept in order, so a chronological split stays one). ``log_dir``,
        ``progress``, ``trainer`` and ``resume`` are :func:`rnnkit.train.train`'s.

        The vocabulary and the tag set come from the training sequences only. Batches hold
        at most ``training.batch_size`` sequences of similar length (length bucketing, made
        once, seeded), so there is little padding, and none where their lengths are equal;
        the order of the batches is shuffled every epoch.
        """
        tag_sequences = _check_pairs(token_sequences, tag_sequences, fitting=True)
        if validation is None:
            check_rate("val_fraction", val_fraction)
            cut = len(token_sequences) - max(round(len(token_sequences) * val_fraction), 1)
            if val_fraction == 0 or cut < 1:
                raise ValueError(
                    f"val_fraction: {val_fraction} of {len(token_sequences)} sequences leaves "
                    "no training or validation data; pass validation=(tokens, tags)"
                )
            validation = (token_sequences[cut:], tag_sequences[cut:])
            token_sequences, tag_sequences = token_sequences[:cut], tag_sequences[:cut]
        val_tokens, val_tags = validation
        val_tags = _check_pairs(val_tokens, val_tags, name="validation", fitting=True)
        vocabulary = Vocabulary.build(token_sequences, min_count=self.config.min_count)
        tags = tuple(sorted({t for s in tag_sequences for t in s}, key=_tag_order))
        self._fitted = _Fitted(vocabulary, tags)
        index = {t: i for i, t in enumerate(tags)}
        unseen = {t for s in val_tags for t in s} - set(index)
        if unseen:
            raise ValueError(
                f"validation: tags {sorted(unseen, key=_tag_order)} are not in "
                f"the training tags {list(tags)}"
            )
        datasets = [
            [(vocabulary.encode(x), [index[t] for t in y]) for x, y in zip(xs, ys, strict=True)]
            for xs, ys in ((token_sequences, tag_sequences), (val_tokens, val_tags))
        ]
        batch_size, seed = self.training.batch_size, self.training.seed
        batches = [_bucketed(items, batch_size, seed) for items in datasets]
        torch.manual_seed(seed)
        self.network = TaggerNetwork(len(vocabulary), len(tags), self.config)
        # The loader shuffles the prepared batches: one batch per item.
        by_batch = replace(self.training, batch_size=1)
        history = train(
            self.network,
            _tag_loss,
            *batches,
            by_batch,
            log_dir,
            progress,
            trainer,
            collate_fn=_one_batch,
            resume=resume,
        )
        self._fitted.history = history
        return history

    def predict_logits(self, token_sequences: Sequence[Sequence[str]]) -> list[Tensor]:
        """Tag logits ``(len(sequence), T)`` per sequence, in the order of :attr:`tags`.
        Tokens unseen in training count as ``<unk>``; an empty sequence gives ``(0, T)``."""
        network, fitted = self._require_network(), self._require_fitted()
        _check_tokens(token_sequences)
        logits = [torch.zeros(0, len(fitted.tags))] * len(token_sequences)
        order = sorted(
            (i for i, s in enumerate(token_sequences) if s), key=lambda i: len(token_sequences[i])
        )
        network.eval()
        with torch.no_grad():
            for start in range(0, len(order), _PREDICT_BATCH):  # similar lengths together
                chunk = order[start : start + _PREDICT_BATCH]
                ids, lengths = pad_batch(
                    [fitted.vocabulary.encode(token_sequences[i]) for i in chunk]
                )
                scores = network(ids, lengths)  # (N, L, T)
                for row, i in enumerate(chunk):
                    logits[i] = scores[row, : lengths[row]]
        return logits

    def predict(self, token_sequences: Sequence[Sequence[str]]) -> list[list[Tag]]:
        """The most likely tag at every step of every sequence."""
        tags = self._require_fitted().tags
        return [
            [tags[i] for i in s.argmax(-1).tolist()] for s in self.predict_logits(token_sequences)
        ]

    def evaluate(
        self, token_sequences: Sequence[Sequence[str]], tag_sequences: Sequence[Sequence[Tag]]
    ) -> dict[str, float]:
        """:func:`tag_scores` of the predictions against ``tag_sequences`` (with
        ``config.positive``, or macro averages when that tag was never seen in training)."""
        tag_sequences = _check_pairs(token_sequences, tag_sequences)
        positive = self.config.positive
        positive = positive if positive in self._require_fitted().tags else None
        return tag_scores(tag_sequences, self.predict(token_sequences), positive)

    def save(self, directory: str | Path, metadata: dict[str, Any] | None = None) -> Path:
        """Write weights (safetensors) and config, vocabulary, tags, curves and
        ``metadata`` (JSON) to ``directory``."""
        fitted = self._require_fitted()
        fitted_state = {
            "vocabulary": list(fitted.vocabulary.tokens),
            "tags": list(fitted.tags),
        }
        return self._save(directory, fitted_state, metadata)

    @classmethod
    def load(cls, directory: str | Path) -> SequenceTagger:
        """Rebuild a tagger saved with :meth:`save`."""
        tagger, state, weights = cls._read(directory)
        tagger._fitted = _Fitted(
            Vocabulary(tuple(state["vocabulary"])),
            tuple(state["tags"]),
            History(**state["history"]),
            state["metadata"],
        )
        tagger.network = build_network(
            directory,
            partial(TaggerNetwork, len(state["vocabulary"]), len(state["tags"]), tagger.config),
            weights,
        )
        return tagger

    @property
    def tags(self) -> tuple[Tag, ...]:
        return self._require_fitted().tags

    @property
    def vocabulary(self) -> Vocabulary:
        return self._require_fitted().vocabulary


def _tag_order(tag: Hashable) -> tuple[str, Any]:
    return type(tag).__name__, tag


def _check_tokens(token_sequences: object, name: str = "token_sequences") -> None:
    if isinstance(token_sequences, str) or not isinstance(token_sequences, Sequence):
        raise TypeError(
            f"{name}: expected a list of token sequences, got {type(token_sequences).__name__}"
            + ("; wrap one sequence in a list" if isinstance(token_sequences, str) else "")
        )
    for i, tokens in enumerate(token_sequences):
        if isinstance(tokens, str):
            continue
        if not isinstance(tokens, Sequence) or not all(isinstance(t, str) for t in tokens):
            raise TypeError(
                f"{name}[{i}]: expected a str or a sequence of str tokens, got {tokens!r:.60}"
            )


def _check_pairs(
    token_sequences: Sequence[Sequence[str]],
    tag_sequences: Sequence[Sequence[Any]],
    name: str = "token_sequences",
    fitting: bool = False,
) -> list[list[Tag]]:
    """Check tokens and tags side by side; return the tags as lists of int or str."""
    _check_tokens(token_sequences, name)
    if isinstance(tag_sequences, str) or not isinstance(tag_sequences, Sequence):
        raise TypeError(
            f"tag_sequences: expected a list of tag sequences, got {type(tag_sequences).__name__}"
        )
    if len(tag_sequences) != len(token_sequences) or not token_sequences:
        raise ValueError(
            f"{name}: expected a non-empty list with one tag sequence per token "
            f"sequence, got {len(token_sequences)} and {len(tag_sequences)}"
        )
    checked = []
    for i, (tokens, tags) in enumerate(zip(token_sequences, tag_sequences, strict=True)):
        if len(tags) != len(tokens):
            raise ValueError(
                f"{name}[{i}]: expected {len(tokens)} tags (one per token), got {len(tags)}"
            )
        if fitting and not tokens:
            raise ValueError(f"{name}[{i}]: empty sequence; drop it, it has no tags to learn from")
        row = []
        for tag in tags:
            if isinstance(tag, numbers.Integral):
                tag = int(tag)
            elif not isinstance(tag, str):
                raise TypeError(f"{name}[{i}]: expected int or str tags, got {tag!r}")
            row.append(tag)
        checked.append(row)
    return checked


# ---------------------------------------------------------------------- word boundaries


#: What :class:`SpaceRestorer` uses unless told otherwise: enough for F1 >= 0.95 on the
#: held-out play of the bundled Shakespeare in 11-15 minutes on a 2-core CPU (slow test).
RESTORER_OPTIONS: dict[str, Any] = {"hidden_size": 128, "num_layers": 2, "dropout": 0.1}
RESTORER_TRAINING = TrainConfig(max_epochs=8, batch_size=128, learning_rate=5e-3)


class SpaceRestorer:
    """Put spaces back into text whose spaces were removed: a character tagger trained on
    :func:`unspace` examples (tag 1 = a space follows this character).

    Args:
        tagger: a :class:`SequenceTagger` to use (fitted or not); else one is built from
            ``options`` (:class:`TaggerConfig` fields and ``training``) on top of
            :data:`RESTORER_OPTIONS` and :data:`RESTORER_TRAINING`.

    Example:
        >>> restorer = SpaceRestorer()
        >>> restorer.fit(train_lines, val_lines)                        # doctest: +SKIP
        >>> restorer.restore("tobeornottobe")                           # doctest: +SKIP
        'to be or not to be'
    """

    def __init__(self, tagger: SequenceTagger | None = None, **options: Any) -> None:
        if tagger is not None and options:
            raise TypeError("SpaceRestorer: pass either a tagger or keyword options, not both")
        if tagger is not None and tagger._fitted and not set(tagger.tags) <= {0, 1}:
            raise ValueError(
                f"tagger: expected one fitted on 0/1 tags (unspace), got tags {list(tagger.tags)}"
            )
        if tagger is None and "config" not in options:
            options = {**RESTORER_OPTIONS, "training": replace(RESTORER_TRAINING), **options}
        self.tagger = tagger or SequenceTagger(**options)

    def fit(
        self, lines: Sequence[str], val_lines: Sequence[str] | None = None, **fit_options: Any
    ) -> History:
        """Train on the lines' word boundaries; ``fit_options`` go to :meth:`SequenceTagger.fit`."""
        train_set = _examples(lines, "lines")
        validation = None if val_lines is None else _examples(val_lines, "val_lines")
        return self.tagger.fit(*train_set, validation=validation, **fit_options)

    def restore(self, text: str) -> str:
        """Re-segment every line of ``text`` (its whitespace is removed first)."""
        if not isinstance(text, str):
            raise TypeError(f"text: expected a str, got {type(text).__name__}")
        chars = ["".join(line.split()) for line in text.split("\n")]
        return "\n".join(
            respace(c, t) for c, t in zip(chars, self.tagger.predict(chars), strict=True)
        )

    def evaluate(self, lines: Sequence[str]) -> dict[str, float]:
        """Per-character boundary scores (:func:`tag_scores`) on the lines' own spaces."""
        return self.tagger.evaluate(*_examples(lines, "lines"))

    def save(self, directory: str | Path, metadata: dict[str, Any] | None = None) -> Path:
        return self.tagger.save(directory, {"task": "space_restorer", **(metadata or {})})

    @classmethod
    def load(cls, directory: str | Path) -> SpaceRestorer:
        return cls(SequenceTagger.load(directory))


def _examples(lines: Sequence[str], name: str) -> tuple[list[str], list[list[int]]]:
    if isinstance(lines, str):
        raise TypeError(f"{name}: expected a list of lines, got str; use str.splitlines()")
    pairs = [unspace(line) for line in lines]
    pairs = [p for p in pairs if p[0]]
    if not pairs:
        raise ValueError(f"{name}: expected at least one line with text, got none")
    return [c for c, _ in pairs], [t for _, t in pairs]
