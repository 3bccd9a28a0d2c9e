"""A character-level language model (:class:`rnnkit.tasks.Generator`) run one character at a
time: the next-character distribution after each step, and sampling."""

from __future__ import annotations

from typing import Any

import numpy as np

from rnnkit.runtime._file import field
from rnnkit.runtime._layers import Array, StreamingRNN, _tensor

_SPECIALS = 2  # <pad> and <unk> lead every vocabulary; they are not characters


class StreamingGenerator:
    """Feed characters one at a time; read the next-character distribution, or sample.

    ``N`` independent texts stream together when :meth:`step` gets a list of ``N``
    characters (the layer's batching: :meth:`StreamingRNN.step`).

    Attributes:
        vocabulary: the tokens by index (``V`` of them; the first two are ``<pad>`` and
            ``<unk>``, which are never predicted).
        layer: the :class:`StreamingRNN` that carries the text's state.

    Example:
        >>> model = rnnkit.runtime.load("shakespeare.rnnkit")              # doctest: +SKIP
        >>> model.sample("ROMEO:", 100, temperature=0.8, seed=0)           # doctest: +SKIP
        >>> model.step(["R", "J"]).shape    # two texts: (N, V)           # doctest: +SKIP
    """

    def __init__(
        self, header: dict[str, Any], tensors: dict[str, Array], backend: str, dtype: str
    ) -> None:
        layer = field(header, "layer", dict, "header")
        self.layer = StreamingRNN(layer, tensors, backend, "layer", dtype)
        spec = field(header, "generator", dict, "header")
        tokens = field(spec, "vocabulary", list, "generator")
        if len(tokens) <= _SPECIALS or not all(isinstance(t, str) for t in tokens):
            raise ValueError("generator.vocabulary: expected a list of more than 2 strings")
        if self.layer.bidirectional:
            raise ValueError("layer: a generator's layer reads text forwards only")
        self.vocabulary = tuple(tokens)
        self._index = {token: i for i, token in enumerate(tokens)}
        size = len(tokens)
        self._embedding = _tensor(tensors, "embedding.weight", (size, self.layer.input_size))
        head = _tensor(tensors, "head.weight", (size, self.layer.output_size))
        self._head_weight = np.ascontiguousarray(head.T)  # (S_0, V)
        self._head_bias = _tensor(tensors, "head.bias", (size,))

    def step(self, character: str | list[str] | tuple[str, ...]) -> Array:
        """Read one character per stream; return the next character's probabilities, indexed
        like :attr:`vocabulary` (``<pad>`` and ``<unk>`` get 0).

        Args:
            character: a str for one stream, or a list (tuple) of ``N`` of them, one per
                independent stream; every step must then have the same ``N`` (the state's
                batch) until :meth:`reset` (or a new :attr:`state`).

        Returns:
            ``(V,)`` for one stream, ``(N, V)`` for a batch.
        """
        if isinstance(character, str):
            x = self._embedding[self._id(character)]  # (H_in,)
        elif isinstance(character, (list, tuple)) and character:
            x = self._embedding[[self._id(c, f"character[{n}]") for n, c in enumerate(character)]]
        elif isinstance(character, (list, tuple)):
            raise ValueError("character: expected a non-empty batch (one str per stream), got []")
        else:
            raise TypeError(
                f"character: expected a str or a list of str (one per stream), got "
                f"{type(character).__name__}"
            )
        return self._probabilities(self.layer.step(x))  # (S_0,) or (N, S_0) -> (V,) or (N, V)

    def reset(self) -> None:
        """Start new texts: the next :meth:`step` may take any number of streams."""
        self.layer.reset()

    @property
    def state(self) -> tuple[Array, ...] | None:
        """The layer's state, ``(num_layers, N, S_k)`` per state tensor (see
        :attr:`StreamingRNN.state`); assign it to resume the ``N`` texts, None to reset."""
        return self.layer.state

    @state.setter
    def state(self, value: tuple[Array, ...] | None) -> None:
        self.layer.state = value

    def predict_next(self, top_k: int | None = 5) -> dict[str, float]:
        """The ``top_k`` likeliest next characters after what was read (None: all), most
        likely first, with their probabilities. One stream only (a batch: use :meth:`step`'s
        probabilities)."""
        state = self.layer.state
        if state is None:
            raise ValueError("predict_next: read at least one character with step() first")
        if state[0].shape[1] != 1:
            raise ValueError(
                f"predict_next: reads one stream, the state holds {state[0].shape[1]}; use the "
                "probabilities step() returns"
            )
        probabilities = self._probabilities(state[0][-1, 0])
        count = len(self.vocabulary) - _SPECIALS if top_k is None else top_k
        order = np.argsort(-probabilities, kind="stable")[:count]
        return {self.vocabulary[i]: float(probabilities[i]) for i in order}

    def sample(
        self,
        prompt: str,
        length: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        seed: int | None = None,
    ) -> str:
        """Continue ``prompt`` with ``length`` characters, as ``Generator.sample`` does (the
        prompt not included; a fresh text, the stream's state is kept as it was).

        Args:
            temperature: logits are divided by it (> 0); top_k: sample among the ``top_k``
                likeliest (1 is greedy); seed: seeds NumPy's generator (draws differ from
                torch's, the distribution is the same).
        """
        if not isinstance(prompt, str) or not prompt:
            raise ValueError(f"prompt: expected a non-empty str, got {prompt!r}")
        if type(length) is not int or length < 1:
            raise ValueError(f"length: expected an int >= 1, got {length!r}")
        if not temperature > 0:
            raise ValueError(f"temperature: expected a float > 0, got {temperature!r}")
        if top_k is not None and (
            isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1
        ):
            raise ValueError(f"top_k: expected None or an int >= 1, got {top_k!r}")
        ids = [self._id(c) for c in prompt]
        rng = np.random.default_rng(seed)
        kept = self.layer.state
        self.layer.reset()
        try:
            for index in ids:
                output = self.layer.step(self._embedding[index])
            chosen = []
            for _ in range(length):
                logits = self._logits(output) / temperature
                if top_k is not None and top_k < len(logits):
                    logits[np.argsort(-logits, kind="stable")[top_k:]] = -np.inf
                probabilities = np.exp(logits - logits.max())
                index = int(rng.choice(len(logits), p=probabilities / probabilities.sum()))
                chosen.append(self.vocabulary[index])
                output = self.layer.step(self._embedding[index])
        finally:
            self.layer.state = kept
        return "".join(chosen)

    def _id(self, character: str, name: str = "character") -> int:
        index = self._index.get(character) if isinstance(character, str) else None
        if index is None or index < _SPECIALS:
            raise ValueError(f"{name}: {character!r} is not in the model's vocabulary")
        return index

    def _logits(self, output: Array) -> Array:
        """``(..., S_0)`` -> ``(..., V)`` float64 logits, ``<pad>`` and ``<unk>`` ruled out."""
        logits = (output @ self._head_weight + self._head_bias).astype(np.float64)
        logits[..., :_SPECIALS] = -np.inf
        return logits

    def _probabilities(self, output: Array) -> Array:
        """``(..., S_0)`` -> ``(..., V)``."""
        logits = self._logits(output)
        probabilities = np.exp(logits - logits.max(axis=-1, keepdims=True))
        return probabilities / probabilities.sum(axis=-1, keepdims=True)
