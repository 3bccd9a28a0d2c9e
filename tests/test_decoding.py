"""Greedy and beam-search decoding against exhaustive search over hand-built Markov models."""

from __future__ import annotations

import itertools
import math
from collections import namedtuple

import pytest
import torch

from rnnkit.tasks._decoding import beam_search, greedy_decode

BOS, EOS = 0, 1


def second_order_model(batch: int, vocab: int, seed: int) -> tuple[object, dict]:
    """A step function whose next-token law depends on the input and the last two tokens,
    so beam search must reorder the state with the beams to get it right."""
    generator = torch.Generator().manual_seed(seed)
    logits = 2 * torch.randn(batch, vocab, vocab, vocab, generator=generator)
    logits[..., EOS] -= 2  # long outputs, where a beam reading another beam's state goes wrong
    table = torch.log_softmax(logits, dim=-1)  # (N, previous, last, next)

    def step(tokens, state):
        rows = torch.arange(len(tokens))
        log_probs = state["table"][rows, state["previous"], tokens]  # (N, V)
        return log_probs, {"table": state["table"], "previous": tokens}

    state = {"table": table, "previous": torch.full((batch,), BOS)}
    return step, state


def exhaustive(table, vocab, max_length, alpha):
    """The best output of one input by enumerating every sequence the decoders can produce:
    ``t - 1`` non-eos tokens then eos (t <= max_length) or ``max_length`` non-eos tokens."""
    words = [w for w in range(vocab) if w != EOS]
    candidates = [
        (tokens, True) for n in range(max_length) for tokens in itertools.product(words, repeat=n)
    ]
    candidates += [(tokens, False) for tokens in itertools.product(words, repeat=max_length)]
    best, best_score = None, -math.inf
    for tokens, ends in candidates:
        sequence = [BOS, *tokens, *([EOS] if ends else [])]
        previous, score = BOS, 0.0
        for last, following in itertools.pairwise(sequence):
            score += float(table[previous, last, following])
            previous = last
        steps = len(sequence) - 1
        score /= ((5 + steps) / 6) ** alpha
        if score > best_score:
            best, best_score = list(tokens), score
    return best


@pytest.mark.parametrize("alpha", [0.0, 0.6, 1.5])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_beam_wide_enough_finds_the_exhaustive_optimum(alpha, seed):
    vocab, max_length, batch = 4, 4, 3
    step, state = second_order_model(batch, vocab, seed)
    everything = sum(3**n for n in range(max_length)) + 3**max_length  # 121 sequences
    found = beam_search(step, state, BOS, EOS, everything, max_length, length_penalty=alpha)
    expected = [exhaustive(state["table"][b], vocab, max_length, alpha) for b in range(batch)]
    assert found == expected


def test_beam_finds_the_closed_form_best_that_greedy_misses():
    # bos -> a 0.55 | b 0.45; a -> eos 0.4 | a 0.3 | b 0.3; b -> eos 0.9 | a 0.05 | b 0.05.
    # Best sequence: [b] (0.45 * 0.9 = 0.405); greedy takes a then eos (0.55 * 0.4 = 0.22).
    a, b = 2, 3
    table = torch.full((4, 4), 1e-9)
    table[BOS, [a, b]] = torch.tensor([0.55, 0.45])
    table[a, [EOS, a, b]] = torch.tensor([0.4, 0.3, 0.3])
    table[b, [EOS, a, b]] = torch.tensor([0.9, 0.05, 0.05])
    table = table.log()

    def step(tokens, state):
        return table[tokens], state

    state = torch.zeros(1, 1)
    assert greedy_decode(step, state, BOS, EOS, 5) == [[a]]
    assert beam_search(step, state, BOS, EOS, 2, 5, length_penalty=0.0) == [[b]]


@pytest.mark.parametrize("alpha", [0.0, 0.6, 2.0])
def test_beam_size_one_is_greedy(alpha):
    step, state = second_order_model(16, 5, seed=3)
    greedy = greedy_decode(step, state, BOS, EOS, 7)
    assert beam_search(step, state, BOS, EOS, 1, 7, length_penalty=alpha) == greedy
    # greedy itself: argmax at every step, by hand
    table = state["table"]
    for b, tokens in enumerate(greedy):
        previous, last, expected = BOS, BOS, []
        for _ in range(7):
            following = int(table[b, previous, last].argmax())
            if following == EOS:
                break
            expected.append(following)
            previous, last = last, following
        assert tokens == expected


def test_the_batch_is_decoded_as_each_input_alone():
    step, state = second_order_model(6, 5, seed=4)
    together = beam_search(step, state, BOS, EOS, 3, 6)
    alone = [
        beam_search(step, {"table": state["table"][[b]], "previous": state["previous"][[b]]},
                    BOS, EOS, 3, 6)[0]
        for b in range(6)
    ]  # fmt: skip
    assert together == alone


def test_state_may_be_nested_tuples_with_none_and_named_tuples():
    Pair = namedtuple("Pair", "table previous")
    step, state = second_order_model(2, 4, seed=5)

    def tuple_step(tokens, pair):
        log_probs, new = step(tokens, {"table": pair[0].table, "previous": pair[0].previous})
        return log_probs, (Pair(new["table"], new["previous"]), None)

    packed = (Pair(state["table"], state["previous"]), None)
    assert beam_search(tuple_step, packed, BOS, EOS, 3, 5) == beam_search(
        step, state, BOS, EOS, 3, 5
    )


def test_bad_arguments_name_themselves():
    step, state = second_order_model(2, 4, seed=0)
    with pytest.raises(ValueError, match="beam_size: expected an int >= 1, got 0"):
        beam_search(step, state, BOS, EOS, 0, 5)
    with pytest.raises(ValueError, match="length_penalty: expected a float >= 0, got -1"):
        beam_search(step, state, BOS, EOS, 2, 5, length_penalty=-1)
    with pytest.raises(TypeError, match="max_length: expected an int"):
        greedy_decode(step, state, BOS, EOS, 2.5)
    with pytest.raises(ValueError, match="state: expected at least one tensor"):
        greedy_decode(step, (None,), BOS, EOS, 5)
    with pytest.raises(ValueError, match="share dim 0"):
        greedy_decode(step, (torch.zeros(2), torch.zeros(3)), BOS, EOS, 5)
    with pytest.raises(TypeError, match="state: expected tensors"):
        beam_search(step, [3], BOS, EOS, 2, 5)
