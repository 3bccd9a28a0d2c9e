"""Greedy and beam-search decoding for any autoregressive model, a batch of inputs at once.

A model is seen through one function, ``step(tokens, state) -> (log_probs, state)``: the
previous token of each sequence ``(N,)`` and the decoder state go in, next-token
log-probabilities ``(N, V)`` and the new state come out. ``state`` is any nesting of tuples,
lists and dicts of tensors (None leaves allowed) whose dim 0 is the batch ``N``, so beam
search can copy every input's state ``beam_size`` times and reorder it with ``index_select``;
anything the decoder attends to (encoder outputs, a padding mask) rides along in it.

Both decoders run at most ``max_length`` steps and return, per input, the chosen tokens
without ``bos`` and ``eos``: a sequence that emitted ``eos`` at step ``t`` returns ``t - 1``
tokens, one that never did returns ``max_length`` tokens (it was cut off).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from rnnkit.checks import check_int

State = Any  # a tensor, None, or a tuple / list / dict of States; dim 0 of each tensor is N
Step = Callable[[Tensor, State], tuple[Tensor, State]]


def greedy_decode(step: Step, state: State, bos: int, eos: int, max_length: int) -> list[list[int]]:
    """The most likely next token at every step, for each of the ``N`` inputs in ``state``.

    Returns:
        ``N`` lists of token ids (no ``bos``, no ``eos``).
    """
    batch, device = _batch_of(state)
    _check_tokens(bos, eos, max_length)
    tokens = torch.full((batch,), bos, dtype=torch.long, device=device)  # (N,)
    chosen, ended = [], torch.zeros(batch, dtype=torch.bool, device=device)
    for _ in range(max_length):
        log_probs, state = step(tokens, state)  # (N, V)
        tokens = log_probs.argmax(dim=-1)  # (N,)
        chosen.append(tokens)
        ended |= tokens == eos
        if bool(ended.all()):
            break
    return [_until_eos(row, eos) for row in torch.stack(chosen, dim=1).tolist()]


def beam_search(
    step: Step,
    state: State,
    bos: int,
    eos: int,
    beam_size: int,
    max_length: int,
    length_penalty: float = 0.6,
) -> list[list[int]]:
    """The best of ``beam_size`` hypotheses kept per input, by length-normalised log-probability.

    A hypothesis of ``n`` steps (its ``eos`` counted) with log-probability ``s`` scores
    ``s / ((5 + n) / 6) ** length_penalty``, GNMT's normalisation (Wu et al. 2016, eq. 14);
    ``length_penalty=0`` ranks by raw log-probability, larger values favour longer outputs.
    As in fairseq, each step ranks the ``2 * beam_size`` best extensions of the live beams:
    an ``eos`` among the first ``beam_size`` of them finishes a hypothesis, and the first
    ``beam_size`` others stay live; an input is done once it has ``beam_size`` finished
    hypotheses (so ``beam_size=1`` is :func:`greedy_decode`, ties aside), and after
    ``max_length`` steps its live beams count as finished.

    Returns:
        ``N`` lists of token ids (no ``bos``, no ``eos``).
    """
    batch, device = _batch_of(state)
    beams = check_int("beam_size", beam_size)
    _check_tokens(bos, eos, max_length)
    if isinstance(length_penalty, bool) or not isinstance(length_penalty, (int, float)):
        raise TypeError(f"length_penalty: expected a float >= 0, got {length_penalty!r}")
    if not (math.isfinite(length_penalty) and length_penalty >= 0):
        raise ValueError(f"length_penalty: expected a float >= 0, got {length_penalty}")

    def normalised(score: float, steps: int) -> float:
        return score / ((5 + steps) / 6) ** length_penalty

    copies = torch.arange(batch, device=device).repeat_interleave(beams)  # (N*K,)
    state = _select(state, copies)
    scores = torch.full((batch, beams), -math.inf, device=device)  # (N, K)
    scores[:, 0] = 0.0  # one live beam at first: the copies would only find duplicates
    tokens = torch.full((batch * beams,), bos, dtype=torch.long, device=device)  # (N*K,)
    history = torch.zeros(batch, beams, 0, dtype=torch.long, device=device)  # (N, K, t)
    finished: list[list[tuple[float, list[int]]]] = [[] for _ in range(batch)]
    done = [False] * batch
    for t in range(1, max_length + 1):
        log_probs, state = step(tokens, state)  # (N*K, V)
        vocab = log_probs.shape[-1]
        if vocab < 2:
            raise ValueError(f"step: expected log_probs of shape (N, V) with V >= 2, got {vocab}")
        extended = scores.unsqueeze(-1) + log_probs.view(batch, beams, vocab)  # (N, K, V)
        top_scores, top_index = extended.view(batch, beams * vocab).topk(2 * beams)  # (N, 2K)
        top_beam, top_token = top_index // vocab, top_index % vocab  # (N, 2K)
        is_eos = top_token == eos
        ending = (is_eos[:, :beams] & (top_scores[:, :beams] > -math.inf)).nonzero().tolist()
        for b, j in ending:  # an eos among the first K: a finished hypothesis
            if not done[b]:
                words = history[b, top_beam[b, j]].tolist()
                finished[b].append((normalised(float(top_scores[b, j]), t), words))
        done = [d or len(f) >= beams for d, f in zip(done, finished, strict=True)]
        if all(done):
            break
        # the first K non-eos extensions (a stable sort keeps their rank order)
        live = torch.sort(is_eos.to(torch.uint8), dim=1, stable=True).indices[:, :beams]  # (N, K)
        scores = top_scores.gather(1, live)  # (N, K)
        parent = top_beam.gather(1, live)  # (N, K)
        tokens = top_token.gather(1, live)  # (N, K)
        history = torch.cat(
            [history.gather(1, parent.unsqueeze(-1).expand_as(history)), tokens.unsqueeze(-1)],
            dim=2,
        )
        rows = (parent + torch.arange(batch, device=device).unsqueeze(1) * beams).flatten()
        state = _select(state, rows)
        tokens = tokens.flatten()  # (N*K,)
    else:  # max_length reached before every input was done
        for b in range(batch):
            if not done[b]:
                finished[b] += [
                    (normalised(float(score), max_length), words)
                    for score, words in zip(scores[b], history[b].tolist(), strict=True)
                    if score > -math.inf
                ]
    return [max(hypotheses, key=lambda pair: pair[0])[1] for hypotheses in finished]


def _check_tokens(bos: int, eos: int, max_length: int) -> None:
    check_int("bos", bos, minimum=0)
    check_int("eos", eos, minimum=0)
    check_int("max_length", max_length)


def _until_eos(tokens: list[int], eos: int) -> list[int]:
    return tokens[: tokens.index(eos)] if eos in tokens else tokens


def _leaves(state: State) -> list[Tensor]:
    if isinstance(state, Tensor):
        return [state]
    if isinstance(state, dict):
        return [leaf for value in state.values() for leaf in _leaves(value)]
    if isinstance(state, (tuple, list)):
        return [leaf for value in state for leaf in _leaves(value)]
    if state is None:
        return []
    raise TypeError(
        f"state: expected tensors in nested tuples, lists or dicts, got {type(state).__name__}"
    )


def _batch_of(state: State) -> tuple[int, torch.device]:
    """The batch size (dim 0, shared by every tensor in ``state``) and the device."""
    leaves = _leaves(state)
    if not leaves:
        raise ValueError("state: expected at least one tensor (its dim 0 is the batch size)")
    sizes = {leaf.shape[0] if leaf.dim() else None for leaf in leaves}
    if len(sizes) != 1 or None in sizes:
        shapes = [tuple(leaf.shape) for leaf in leaves]
        raise ValueError(f"state: expected every tensor to share dim 0 (the batch), got {shapes}")
    return sizes.pop(), leaves[0].device  # type: ignore[return-value]


def _select(state: State, rows: Tensor) -> State:
    """``state`` with dim 0 of every tensor indexed by ``rows``."""
    if isinstance(state, Tensor):
        return state.index_select(0, rows)
    if isinstance(state, dict):
        return {key: _select(value, rows) for key, value in state.items()}
    if isinstance(state, (tuple, list)):
        selected = [_select(value, rows) for value in state]
        return type(state)(*selected) if hasattr(state, "_fields") else type(state)(selected)
    return state
