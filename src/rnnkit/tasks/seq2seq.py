"""Seq2Seq: many-to-many with attention, an encoder-decoder for translation-like tasks.

The encoder is a stacked, optionally bidirectional rnnkit layer over the source tokens; its
outputs are the *memory* ``(N, S, H)`` (each of the ``D`` directions gives ``H / D``), and its
top layer's final state, through a linear *bridge*, starts every decoder layer. The decoder
is a stack of one-layer rnnkit layers run one step at a time (Luong et al. 2015):

    x_t = [embed(y_{t-1}); h~_{t-1}]              input feeding (h~_0 = 0)
    h_t = decoder stack (x_t)                     optional residual connections from layer 2
    a_t = softmax(score(h_t, memory)) over the non-padding source positions
    c_t = a_t @ memory
    h~_t = tanh(W_c [c_t; h_t]),   logits_t = W_out h~_t

with ``score`` additive, ``v^T tanh(W_q h + W_k m)`` ("bahdanau", Bahdanau et al. 2015),
``h^T m`` ("luong-dot") or ``h^T W_a m`` ("luong-general"). Training is teacher forcing,
optionally with scheduled sampling (Bengio et al. 2015): each input token is replaced by the
model's own previous prediction with a probability that grows linearly from 0 to
``scheduled_sampling`` over the run. Decoding is greedy or beam search
(:mod:`rnnkit.tasks._decoding`).

Shape letters: ``N`` batch, ``S`` source length, ``T`` target length, ``E`` embedding size,
``H`` hidden size, ``V`` target vocabulary size.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from rnnkit.checks import check_bool, check_choice, check_int, check_rate
from rnnkit.data.text import PAD, UNK, Vocabulary, pad_batch
from rnnkit.nn import LAYERS, make_layer
from rnnkit.preprocess import TOKENIZERS
from rnnkit.tasks._base import Task, build_network
from rnnkit.tasks._decoding import beam_search, greedy_decode
from rnnkit.train import History, TrainConfig, train

TASK = "seq2seq"
BOS, EOS = "<s>", "</s>"
ATTENTIONS = ("bahdanau", "luong-dot", "luong-general")
SEPARATORS = {"char": "", "word": " "}
_CHUNK = 256  # sources decoded at once


@dataclass
class Seq2SeqConfig:
    """The encoder-decoder's shape and training options.

    Attributes:
        cell: a layer name from :data:`rnnkit.nn.LAYERS` (encoder and decoder).
        tokens: "char" (every character; unknown characters are errors) or "word"
            (lower-cased words; unknown words read as ``<unk>``).
        embedding_size: width of the source and target token vectors.
        hidden_size: the decoder's width and the memory's (split over the directions).
        num_layers, decoder_layers: depths of the encoder and the decoder.
        bidirectional: a bidirectional encoder (``hidden_size`` must then be even).
        attention: "bahdanau" (additive), "luong-dot" or "luong-general".
        input_feeding: feed the previous attentional vector ``h~`` to the decoder.
        residual: add each decoder layer's input to its output, from the second layer on.
        dropout: on embeddings, between stacked layers and before the output layer.
        scheduled_sampling: final probability of feeding the model's own prediction.
        min_count: source and target tokens seen fewer times in training become ``<unk>``.
    """

    cell: str = "lstm"
    tokens: str = "char"
    embedding_size: int = 32
    hidden_size: int = 64  # enough for dates: 100 % exact match on unseen days
    num_layers: int = 1
    decoder_layers: int = 1
    bidirectional: bool = True
    attention: str = "bahdanau"
    input_feeding: bool = True
    residual: bool = False
    dropout: float = 0.0
    scheduled_sampling: float = 0.0
    min_count: int = 1

    def __post_init__(self) -> None:
        check_choice("cell", self.cell, tuple(sorted(LAYERS)))
        check_choice("tokens", self.tokens, tuple(TOKENIZERS))
        check_choice("attention", self.attention, ATTENTIONS)
        for name in ("embedding_size", "hidden_size", "num_layers", "decoder_layers", "min_count"):
            check_int(name, getattr(self, name))
        for name in ("bidirectional", "input_feeding", "residual"):
            check_bool(name, getattr(self, name))
        check_rate("dropout", self.dropout)
        check_rate("scheduled_sampling", self.scheduled_sampling)
        if self.bidirectional and self.hidden_size % 2:
            raise ValueError(
                f"hidden_size: expected an even number with a bidirectional encoder (each "
                f"direction gives half of the memory), got {self.hidden_size}"
            )


class Attention(nn.Module):
    """Scores of a query ``(N, H)`` against a memory ``(N, S, H)`` -> context and weights."""

    def __init__(self, kind: str, size: int) -> None:
        super().__init__()
        self.kind = check_choice("kind", kind, ATTENTIONS)
        if kind == "bahdanau":
            self.query = nn.Linear(size, size, bias=False)
            self.key = nn.Linear(size, size)
            self.energy = nn.Linear(size, 1, bias=False)
        elif kind == "luong-general":
            self.key = nn.Linear(size, size, bias=False)

    def keys(self, memory: Tensor) -> Tensor:
        """What queries are scored against, computed once per source: ``(N, S, H)``."""
        return memory if self.kind == "luong-dot" else self.key(memory)

    def forward(
        self, query: Tensor, keys: Tensor, memory: Tensor, padding: Tensor
    ) -> tuple[Tensor, Tensor]:
        """``padding`` ``(N, S)`` is True past each source's length.

        Returns:
            context ``(N, H)`` and attention weights ``(N, S)`` (zero on padding).
        """
        if self.kind == "bahdanau":
            energy = torch.tanh(keys + self.query(query).unsqueeze(1))  # (N, S, H)
            scores = self.energy(energy).squeeze(-1)  # (N, S)
        else:
            scores = (keys @ query.unsqueeze(-1)).squeeze(-1)  # (N, S)
        weights = torch.softmax(scores.masked_fill(padding, -math.inf), dim=-1)  # (N, S)
        return (weights.unsqueeze(1) @ memory).squeeze(1), weights  # (N, H), (N, S)


class Seq2SeqNetwork(nn.Module):
    """Source ids ``(N, S)`` with lengths ``(N,)`` and target inputs ``(N, T)`` -> logits
    ``(N, T, V)``; :meth:`encode` and :meth:`step` are the same network one step at a time."""

    def __init__(self, source_size: int, target_size: int, config: Seq2SeqConfig) -> None:
        super().__init__()
        self.config = config
        directions = 2 if config.bidirectional else 1
        size, embedding = config.hidden_size, config.embedding_size
        stacked = {"dropout": config.dropout} if config.num_layers > 1 else {}
        self.source_embedding = nn.Embedding(source_size, embedding, padding_idx=0)
        self.encoder = make_layer(
            config.cell,
            embedding,
            size // directions,
            num_layers=config.num_layers,
            bidirectional=config.bidirectional,
            batch_first=True,
            **stacked,
        )
        feed = size if config.input_feeding else 0
        self.decoder = nn.ModuleList(
            make_layer(config.cell, embedding + feed if k == 0 else size, size, batch_first=True)
            for k in range(config.decoder_layers)
        )
        self.bridge = nn.ModuleList(
            nn.Linear(directions * encoded, decoded)
            for encoded, decoded in zip(
                self.encoder.state_sizes, self.decoder[0].state_sizes, strict=True
            )
        )
        self.target_embedding = nn.Embedding(target_size, embedding, padding_idx=0)
        self.attention = Attention(config.attention, size)
        self.combine = nn.Linear(2 * size, size)
        self.head = nn.Linear(size, target_size)
        self.dropout = nn.Dropout(config.dropout)

    def encode(self, source: Tensor, lengths: Tensor) -> dict[str, Any]:
        """The decoder's starting state: every tensor in it has the batch ``N`` as dim 0."""
        batch, directions = len(source), self.encoder.num_directions
        embedded = self.dropout(self.source_embedding(source))  # (N, S, E)
        memory, final = self.encoder(embedded, lengths=lengths)  # (N, S, H)
        final = final if isinstance(final, tuple) else (final,)  # (D * layers, N, S_k) each
        top = [f[-directions:].transpose(0, 1).reshape(batch, -1) for f in final]  # (N, D*S_k)
        start = tuple(torch.tanh(bridge(t)) for bridge, t in zip(self.bridge, top, strict=True))
        padding = torch.arange(source.shape[1], device=source.device) >= lengths.unsqueeze(1)
        return {
            "memory": memory,
            "keys": self.attention.keys(memory),  # (N, S, H)
            "padding": padding,  # (N, S)
            "layers": tuple(start for _ in self.decoder),  # per layer, per state tensor (N, S_k)
            "feed": memory.new_zeros(batch, self.config.hidden_size),  # h~_0: (N, H)
        }

    def step(self, tokens: Tensor, state: dict[str, Any]) -> tuple[Tensor, Tensor, dict[str, Any]]:
        """Previous tokens ``(N,)`` -> logits ``(N, V)``, attention ``(N, S)``, next state."""
        x = self.dropout(self.target_embedding(tokens))  # (N, E)
        if self.config.input_feeding:
            x = torch.cat([x, state["feed"]], dim=-1)  # (N, E + H)
        layers = []
        for k, (layer, hx) in enumerate(zip(self.decoder, state["layers"], strict=True)):
            output, new = layer(x.unsqueeze(1), tuple(h.unsqueeze(0) for h in hx))  # (N, 1, H)
            output = output.squeeze(1)  # (N, H)
            if self.config.residual and k > 0:
                output = output + x
            layers.append(tuple(h.squeeze(0) for h in (new if isinstance(new, tuple) else (new,))))
            x = self.dropout(output) if k < len(self.decoder) - 1 else output
        context, weights = self.attention(x, state["keys"], state["memory"], state["padding"])
        attentional = torch.tanh(self.combine(torch.cat([context, x], dim=-1)))  # (N, H)
        logits = self.head(self.dropout(attentional))  # (N, V)
        return logits, weights, {**state, "layers": tuple(layers), "feed": attentional}

    def forward(
        self, source: Tensor, lengths: Tensor, target: Tensor, sampling: float = 0.0
    ) -> Tensor:
        """Teacher forcing: ``target`` ``(N, T)`` starts with ``<s>``; with probability
        ``sampling`` each later input is the model's own previous prediction instead."""
        state = self.encode(source, lengths)
        tokens, steps = target[:, 0], []
        for t in range(target.shape[1]):
            logits, _, state = self.step(tokens, state)
            steps.append(logits)
            if t + 1 < target.shape[1]:
                tokens = target[:, t + 1]
                if sampling > 0:
                    own = torch.rand(len(tokens), device=tokens.device) < sampling
                    tokens = torch.where(own, logits.detach().argmax(dim=-1), tokens)
        return torch.stack(steps, dim=1)  # (N, T, V)


@dataclass
class _Fitted:
    source_vocabulary: Vocabulary
    target_vocabulary: Vocabulary
    longest_target: int  # tokens in the longest training target (decoding stops at twice it)
    history: History = field(default_factory=History)
    metadata: dict[str, Any] = field(default_factory=dict)


class Seq2Seq(Task[_Fitted, Seq2SeqNetwork]):
    """Fit, translate, evaluate, save and load an attention encoder-decoder.

    Example:
        >>> from rnnkit.data.dates import date_pairs
        >>> train_pairs, test_pairs = date_pairs()
        >>> model = Seq2Seq()
        >>> history = model.fit(*zip(*train_pairs))                          # doctest: +SKIP
        >>> model.translate(["Friday, 5 March 2021"], beam_size=4)           # doctest: +SKIP
        ['2021-03-05']
    """

    task = TASK
    config_type = Seq2SeqConfig
    config: Seq2SeqConfig
    # what docs/experiments/seq2seq.md measured on the dates (the slow quality test)
    default_training = TrainConfig(max_epochs=6, batch_size=32, learning_rate=1e-2)

    # ------------------------------------------------------------------ training

    def fit(
        self,
        sources: Sequence[str],
        targets: Sequence[str],
        val_fraction: float = 0.1,
        log_dir: str | Path | None = None,
        progress: bool = True,
        trainer: Any = None,
        resume: bool = False,
    ) -> History:
        """Train on (source, target) text pairs; a seeded ``val_fraction`` of them is held out
        for early stopping, and the vocabularies come from the rest. ``log_dir``,
        ``progress``, ``trainer`` and ``resume`` are :func:`rnnkit.train.train`'s."""
        source_tokens = self._tokenize("sources", sources)
        target_tokens = self._tokenize("targets", targets)
        if len(source_tokens) != len(target_tokens):
            raise ValueError(
                f"targets: expected one target per source ({len(source_tokens)}), got "
                f"{len(target_tokens)}"
            )
        if check_rate("val_fraction", val_fraction) == 0 or len(source_tokens) < 2:
            raise ValueError(
                f"val_fraction: expected a float in (0, 1) and at least 2 pairs, got "
                f"{val_fraction} and {len(source_tokens)} pairs"
            )
        rows = list(range(len(source_tokens)))
        random.Random(self.training.seed).shuffle(rows)
        cut = min(max(1, round(len(rows) * val_fraction)), len(rows) - 1)
        val_rows, train_rows = rows[:cut], rows[cut:]
        min_count = self.config.min_count
        source_vocabulary = Vocabulary.build([source_tokens[i] for i in train_rows], min_count)
        built = Vocabulary.build([target_tokens[i] for i in train_rows], min_count)
        target_vocabulary = Vocabulary((PAD, UNK, BOS, EOS, *built.tokens[2:]))
        longest = max(len(target_tokens[i]) for i in train_rows)
        self._fitted = _Fitted(source_vocabulary, target_vocabulary, longest)
        encoded = [
            (self._source_ids(tokens, "sources", i, known=False), self._target_ids(target))
            for i, (tokens, target) in enumerate(zip(source_tokens, target_tokens, strict=True))
        ]
        torch.manual_seed(self.training.seed)
        self.network = Seq2SeqNetwork(len(source_vocabulary), len(target_vocabulary), self.config)
        batches = math.ceil(len(train_rows) / self.training.batch_size)
        loss = _TeacherForcing(self.config.scheduled_sampling, batches * self.training.max_epochs)
        history = train(
            self.network,
            loss,
            [encoded[i] for i in train_rows],
            [encoded[i] for i in val_rows],
            self.training,
            log_dir,
            progress,
            trainer,
            collate_fn=_collate,
            resume=resume,
        )
        self._fitted.history = history
        return history

    # ------------------------------------------------------------------ inference

    def translate(
        self,
        sources: str | Sequence[str],
        beam_size: int = 1,
        length_penalty: float = 0.6,
        max_length: int | None = None,
    ) -> str | list[str]:
        """The output text of each source (a str for a str): greedy for ``beam_size=1``,
        else beam search with GNMT's ``length_penalty`` (see
        :func:`rnnkit.tasks._decoding.beam_search`). Decoding stops at ``max_length``
        tokens (default: twice the longest training target)."""
        single = isinstance(sources, str)
        texts = [sources] if single else sources
        encoded = [
            self._source_ids(tokens, "sources", i)
            for i, tokens in enumerate(self._tokenize("sources", texts))
        ]
        outputs = self._decode(encoded, beam_size, length_penalty, max_length)
        return outputs[0] if single else outputs

    def _decode(
        self, encoded: list[Tensor], beam_size: int, length_penalty: float, max_length: int | None
    ) -> list[str]:
        """Output texts of source ids ``(S_i,)``; see :meth:`translate`."""
        check_int("beam_size", beam_size)
        if max_length is not None:
            check_int("max_length", max_length)
        fitted, network = self._require_fitted(), self._require_network()
        limit = 2 * fitted.longest_target if max_length is None else max_length
        vocabulary = fitted.target_vocabulary
        bos, eos = vocabulary.encode([BOS, EOS])
        banned = [vocabulary.pad_index, vocabulary.unk_index, bos]

        def step(tokens: Tensor, state: dict[str, Any]) -> tuple[Tensor, dict[str, Any]]:
            logits, _, state = network.step(tokens, state)
            logits[:, banned] = -math.inf  # never emitted
            return torch.log_softmax(logits, dim=-1), state

        outputs: list[list[int]] = []
        network.eval()
        with torch.no_grad():
            for start in range(0, len(encoded), _CHUNK):
                source, lengths = pad_batch(encoded[start : start + _CHUNK])
                state = network.encode(source, lengths)
                # limit + 1 steps: an output of ``limit`` tokens still gets to emit </s>
                if beam_size == 1:
                    outputs += greedy_decode(step, state, bos, eos, limit + 1)
                else:
                    outputs += beam_search(
                        step, state, bos, eos, beam_size, limit + 1, length_penalty
                    )
        separator = SEPARATORS[self.config.tokens]
        return [separator.join(vocabulary.decode(ids[:limit])) for ids in outputs]

    def evaluate(
        self,
        sources: Sequence[str],
        targets: Sequence[str],
        beam_size: int = 1,
        length_penalty: float = 0.6,
    ) -> dict[str, float]:
        """``{"exact_match", "examples"}``: the share of outputs equal to their target
        (compared as token sequences, so word outputs ignore case and spacing). Unlike
        :meth:`translate`, a character never seen in training reads as ``<unk>``: the
        model is scored on it, not refused."""
        expected = self._tokenize("targets", targets)
        encoded = [
            self._source_ids(tokens, "sources", i, known=False)
            for i, tokens in enumerate(self._tokenize("sources", sources))
        ]
        outputs = self._decode(encoded, beam_size, length_penalty, None)
        if len(outputs) != len(expected):
            raise ValueError(
                f"targets: expected one target per source ({len(outputs)}), got {len(expected)}"
            )
        tokenize = TOKENIZERS[self.config.tokens]
        hits = sum(tokenize(o) == e for o, e in zip(outputs, expected, strict=True))
        return {"exact_match": hits / len(expected), "examples": len(expected)}

    def attention(self, source: str) -> tuple[np.ndarray, list[str], list[str]]:
        """Greedy output of ``source`` and where the decoder looked for each output token.

        Returns:
            weights ``(T, S)`` (row ``t``: attention while emitting output token ``t``; the
            last row is for ``</s>``), the ``S`` source tokens and the ``T`` output tokens.
        """
        fitted, network = self._require_fitted(), self._require_network()
        (tokens,) = self._tokenize("source", [source])
        ids = self._source_ids(tokens, "source", 0)
        vocabulary = fitted.target_vocabulary
        bos, eos = vocabulary.encode([BOS, EOS])
        banned = [vocabulary.pad_index, vocabulary.unk_index, bos]
        rows, outputs = [], []
        network.eval()
        with torch.no_grad():
            state = network.encode(ids.unsqueeze(0), torch.tensor([len(ids)]))  # (1, S)
            token = torch.tensor([bos])
            for _ in range(2 * fitted.longest_target + 1):
                logits, weights, state = network.step(token, state)  # (1, V), (1, S)
                logits[:, banned] = -math.inf
                token = logits.argmax(dim=-1)
                rows.append(weights[0].numpy())
                outputs.append(int(token))
                if outputs[-1] == eos:
                    break
        return np.stack(rows), list(tokens), vocabulary.decode(outputs)

    # ------------------------------------------------------------------ text to ids

    def _tokenize(self, name: str, texts: Sequence[str]) -> list[list[str]]:
        if isinstance(texts, str) or not isinstance(texts, Sequence):
            raise TypeError(f"{name}: expected a list of str, got {type(texts).__name__}")
        tokenize, tokenized = TOKENIZERS[self.config.tokens], []
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"{name}[{i}]: expected a str, got {type(text).__name__}")
            tokens = tokenize(text)
            if not tokens:
                raise ValueError(
                    f"{name}[{i}]: expected a text with at least one {self.config.tokens} "
                    f"token, got {text!r}"
                )
            tokenized.append(tokens)
        if not tokenized:
            raise ValueError(f"{name}: expected at least one text, got none")
        return tokenized

    def unknown_tokens(self, text: str) -> list[str]:
        """The distinct tokens of ``text`` that the model never saw in training."""
        vocabulary = self._require_fitted().source_vocabulary
        return sorted({t for t in TOKENIZERS[self.config.tokens](text) if t not in vocabulary})

    def _source_ids(self, tokens: list[str], name: str, i: int, known: bool = True) -> Tensor:
        """``(S,)`` ids; with ``known`` and char tokens, an unseen character is an error (the
        alphabet is closed; unseen words are expected and read as ``<unk>``)."""
        vocabulary = self._require_fitted().source_vocabulary
        if known and self.config.tokens == "char":
            unknown = sorted({t for t in tokens if t not in vocabulary})
            if unknown:
                shown = ", ".join(map(repr, unknown[:10]))
                raise ValueError(f"{name}[{i}]: characters not in the model's vocabulary: {shown}")
        return torch.tensor(vocabulary.encode(tokens), dtype=torch.int64)

    def _target_ids(self, tokens: list[str]) -> Tensor:
        """``(T + 2,)``: ``<s>``, the tokens, ``</s>``."""
        vocabulary = self._require_fitted().target_vocabulary
        return torch.tensor(vocabulary.encode([BOS, *tokens, EOS]), dtype=torch.int64)

    # ------------------------------------------------------------------ files

    def save(self, directory: str | Path, metadata: dict[str, Any] | None = None) -> Path:
        """Write weights (safetensors) and config, vocabularies, curves and ``metadata``
        (JSON) to ``directory``."""
        fitted = self._require_fitted()
        fitted_state = {
            "source_vocabulary": list(fitted.source_vocabulary.tokens),
            "target_vocabulary": list(fitted.target_vocabulary.tokens),
            "longest_target": fitted.longest_target,
        }
        return self._save(directory, fitted_state, metadata)

    @classmethod
    def load(cls, directory: str | Path) -> Seq2Seq:
        """Rebuild a model saved with :meth:`save`."""
        model, state, weights = cls._read(directory)
        source = Vocabulary(tuple(state["source_vocabulary"]))
        target = Vocabulary(tuple(state["target_vocabulary"]))
        model._fitted = _Fitted(
            source,
            target,
            state["longest_target"],
            History(**state["history"]),
            state["metadata"],
        )
        model.network = build_network(
            directory, partial(Seq2SeqNetwork, len(source), len(target), model.config), weights
        )
        return model


class _TeacherForcing:
    """Cross-entropy of the next target tokens; in training, the scheduled-sampling
    probability grows linearly from 0 to ``final_rate`` over ``total_steps`` batches."""

    def __init__(self, final_rate: float, total_steps: int) -> None:
        self.final_rate, self.total_steps, self.steps = final_rate, max(total_steps, 1), 0

    def __call__(self, network: nn.Module, batch: tuple[Tensor, Tensor, Tensor]) -> Tensor:
        source, lengths, target = batch
        sampling = 0.0
        if network.training and self.final_rate > 0:
            sampling = self.final_rate * min(1.0, self.steps / self.total_steps)
            self.steps += 1
        logits = network(source, lengths, target[:, :-1], sampling)  # (N, T, V)
        return nn.functional.cross_entropy(
            logits.flatten(0, 1), target[:, 1:].flatten(), ignore_index=0
        )


def _collate(pairs: list[tuple[Tensor, Tensor]]) -> tuple[Tensor, Tensor, Tensor]:
    """Padded sources ``(N, S)``, their lengths ``(N,)`` and padded targets ``(N, T + 2)``."""
    source, lengths = pad_batch([s for s, _ in pairs])
    target, _ = pad_batch([t for _, t in pairs])
    return source, lengths, target
