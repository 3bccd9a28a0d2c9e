"""Bidirectional vs unidirectional: a gain where the answer depends on the future, and why a
bidirectional model cannot generate text.

1. Word boundaries. Shakespeare's lines with their spaces removed; tag each character 1 when
   a space followed it (``rnnkit.tasks.tagger.unspace``). Whether "to|be" ends a word after
   "o" depends on the letters that come *next*: a forward-only LSTM must guess before it has
   seen them, a bidirectional one reads them. Both are ``SequenceTagger`` s of the same size.
   Two count-based baselines frame them: the majority tag given the previous and current
   character (the past only) and given the current and next character.

2. Next-character prediction. The same two layers are trained as language models: the output
   at step t predicts character t+1. The backward half of a bidirectional layer has already
   read character t+1 at step t, so it copies the answer and its training loss falls to near
   zero. Generation has no future to read: each new character must be predicted from the
   prefix alone. Scored that way ("causal" loss: each prediction from the prefix only) the
   bidirectional model is worse than the forward one, and far fewer of the words in its
   samples are words at all.

Run: python examples/bidirectional.py [--chars 300000] [--epochs 3] [--steps 600] [--seed 0]
"""

from __future__ import annotations

import argparse
import math
import re

import torch
from torch import Tensor, nn

from rnnkit.data import Vocabulary, char_tokens, load_text
from rnnkit.nn import make_layer
from rnnkit.tasks import SequenceTagger
from rnnkit.tasks.tagger import WindowBaseline, split_lines, tag_scores, unspace
from rnnkit.train import TrainConfig


def boundary_scores(text: str, epochs: int, hidden: int, seed: int) -> dict[str, float]:
    """Word-boundary F1 on held-out lines: ``{method: F1}``."""
    train, val, test = ([unspace(line) for line in part] for part in split_lines(text)[:3])
    train_chars, train_tags = [c for c, _ in train], [t for _, t in train]
    test_chars, test_tags = [c for c, _ in test], [t for _, t in test]
    scores = {}
    for name, left, right in (("previous + current char", 2, 0), ("current + next char", 1, 1)):
        baseline = WindowBaseline(left, right).fit(train_chars, train_tags)
        scores[f"counts: {name}"] = tag_scores(test_tags, baseline.predict(test_chars), 1)["f1"]
    for bidirectional in (False, True):
        tagger = SequenceTagger(
            cell="lstm", bidirectional=bidirectional, hidden_size=hidden,
            training=TrainConfig(max_epochs=epochs, batch_size=64, learning_rate=5e-3, seed=seed),
        )  # fmt: skip
        tagger.fit(train_chars, train_tags, ([c for c, _ in val], [t for _, t in val]),
                   progress=False)  # fmt: skip
        name = "bidirectional LSTM" if bidirectional else "forward LSTM"
        scores[name] = tagger.evaluate(test_chars, test_tags)["f1"]
    return scores


class CharModel(nn.Module):
    """Character ids ``(N, L)`` -> next-character logits ``(N, L, V)`` at every step."""

    def __init__(self, vocab_size: int, hidden_size: int, bidirectional: bool) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, 32)
        self.layer = make_layer("lstm", 32, hidden_size, bidirectional=bidirectional,
                                batch_first=True)  # fmt: skip
        self.head = nn.Linear(self.layer.num_directions * hidden_size, vocab_size)

    def forward(self, ids: Tensor) -> Tensor:
        output, _ = self.layer(self.embedding(ids))  # (N, L, D * H)
        return self.head(output)  # (N, L, V)


def train_char_model(ids: Tensor, vocab_size: int, bidirectional: bool, steps: int,
                     hidden: int, seed: int, length: int = 64) -> CharModel:  # fmt: skip
    """Adam on random chunks of ``ids`` ``(T,)``: inputs ``[s, s+L)``, targets one later."""
    torch.manual_seed(seed)
    model = CharModel(vocab_size, hidden, bidirectional)
    optimiser = torch.optim.Adam(model.parameters(), lr=5e-3)
    for _ in range(steps):
        starts = torch.randint(0, len(ids) - length - 1, (32,))
        chunks = torch.stack([ids[s : s + length + 1] for s in starts.tolist()])  # (32, L+1)
        logits = model(chunks[:, :-1])
        loss = nn.functional.cross_entropy(logits.flatten(0, 1), chunks[:, 1:].flatten())
        optimiser.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimiser.step()
    return model.eval()


@torch.no_grad()
def next_char_losses(model: CharModel, chunks: Tensor) -> tuple[float, float]:
    """Mean cross-entropy (nats per character) on ``chunks`` ``(N, L+1)``: with the whole
    chunk visible (how it trained) and causal (step t's prediction from the prefix up to t
    only, as in generation)."""
    inputs, targets = chunks[:, :-1], chunks[:, 1:]  # (N, L)
    visible = nn.functional.cross_entropy(model(inputs).flatten(0, 1), targets.flatten())
    causal = torch.stack([
        nn.functional.cross_entropy(model(inputs[:, : t + 1])[:, -1], targets[:, t])
        for t in range(inputs.shape[1])
    ])  # fmt: skip
    return visible.item(), causal.mean().item()


@torch.no_grad()
def sample(model: CharModel, vocabulary: Vocabulary, prompt: str, length: int,
           seed: int) -> str:  # fmt: skip
    """Continue ``prompt`` by ``length`` characters sampled at temperature 0.8, one at a time,
    re-reading the whole prefix each step (a bidirectional layer's backward half would have to
    start again from the new end anyway)."""
    generator = torch.Generator().manual_seed(seed)
    ids = vocabulary.encode(char_tokens(prompt))
    for _ in range(length):
        logits = model(torch.tensor([ids]))[0, -1, 2:]  # (V - 2,): <pad>, <unk> excluded
        probabilities = torch.softmax(logits / 0.8, dim=-1)
        ids.append(2 + int(torch.multinomial(probabilities, 1, generator=generator)))
    return "".join(vocabulary.decode(ids[len(prompt) :]))


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chars", type=int, default=300_000, help="Shakespeare characters")
    parser.add_argument("--epochs", type=int, default=3, help="tagger epochs")
    parser.add_argument("--steps", type=int, default=600, help="language-model Adam steps")
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--sample", type=int, default=400, help="characters to generate")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    text = load_text("shakespeare")[: args.chars]

    print("1. Word boundaries (F1 of 'a space follows', held-out lines)")
    scores = boundary_scores(text, args.epochs, args.hidden, args.seed)
    for name, f1 in scores.items():
        print(f"   {name:30s} {f1:.3f}")

    print("2. Next-character prediction (nats per character, held-out text)")
    cut = int(0.9 * len(text))
    vocabulary = Vocabulary.build([char_tokens(text)])
    ids = torch.tensor(vocabulary.encode(char_tokens(text)))
    held_out = ids[cut : cut + 64 * 65].view(64, 65)  # 64 chunks of 64 inputs + 1
    results = {f"f1_{k}": v for k, v in scores.items()}
    known = set(_words(text[:cut]))
    print(f"   {'layer':13s} {'future visible':>14s} {'causal':>7s} {'real words':>10s}   "
          "sample after 'ROMEO:'")  # fmt: skip
    for bidirectional in (False, True):
        model = train_char_model(ids[:cut], len(vocabulary), bidirectional, args.steps,
                                 args.hidden, args.seed)  # fmt: skip
        visible, causal = next_char_losses(model, held_out)
        name = "bidirectional" if bidirectional else "forward"
        generated = sample(model, vocabulary, "ROMEO:", args.sample, args.seed)
        words = _words(generated)
        real = sum(w in known for w in words) / max(len(words), 1)
        shown = generated[:60].replace("\n", " / ")
        print(f"   {name:13s} {visible:14.3f} {causal:7.3f} {real:10.0%}   {shown!r}")
        results.update({f"{name}_visible": visible, f"{name}_causal": causal,
                        f"{name}_real_words": real})  # fmt: skip
    print(f"   uniform guess over {len(vocabulary) - 2} characters: "
          f"{math.log(len(vocabulary) - 2):.3f}; real words: share of the sample's words that "
          "occur in the training text")  # fmt: skip
    return results


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z]+", text.lower())


if __name__ == "__main__":
    main()
