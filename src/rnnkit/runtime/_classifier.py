"""A sequence classifier (:class:`rnnkit.tasks.SequenceClassifier`) without torch: whole
texts or numeric sequences, and, for a one-directional encoder, one token or step at a time.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rnnkit.preprocess import TOKENIZERS
from rnnkit.runtime._file import field
from rnnkit.runtime._layers import Array, StreamingRNN, _tensor

POOLINGS = ("last", "mean", "max")
_UNK = 1


class StreamingClassifier:
    """Classify whole sequences (:meth:`predict_proba`), or stream one (:meth:`step`).

    Attributes:
        classes: the class labels, in the order of the probability columns (``C``).
        kind: ``"text"`` or ``"sequence"`` (numeric ``(L, F)`` inputs), what it was fitted on.
        encoder: the :class:`StreamingRNN` that reads the sequence.

    Example:
        >>> model = rnnkit.runtime.load("sentiment.rnnkit")                # doctest: +SKIP
        >>> model.predict(["What a great phone!"])                         # doctest: +SKIP
        array(['positive'], dtype='<U8')
    """

    def __init__(
        self, header: dict[str, Any], tensors: dict[str, Array], backend: str, dtype: str
    ) -> None:
        self.encoder = StreamingRNN(
            field(header, "layer", dict, "header"), tensors, backend, "layer", dtype
        )
        spec = field(header, "classifier", dict, "header")
        where = "classifier"
        self.kind = field(spec, "kind", str, where)
        self.classes = tuple(field(spec, "classes", list, where))
        self.pooling = tuple(field(spec, "pooling", list, where))
        self.max_length = spec.get("max_length")
        if self.kind not in ("text", "sequence") or not set(self.pooling) <= set(POOLINGS):
            raise ValueError(f"{where}: unknown kind {self.kind!r} or pooling {self.pooling!r}")
        width = len(self.pooling) * self.encoder.output_size
        self._head_weight = np.ascontiguousarray(
            _tensor(tensors, "head.weight", (len(self.classes), width)).T
        )  # (P * D * S_0, C)
        self._head_bias = _tensor(tensors, "head.bias", (len(self.classes),))
        if self.kind == "text":
            self.tokens = field(spec, "tokens", str, where)
            vocabulary = field(spec, "vocabulary", list, where)
            self._index = {token: i for i, token in enumerate(vocabulary)}
            shape = (len(vocabulary), self.encoder.input_size)
            self._embedding = _tensor(tensors, "embedding.weight", shape)
        else:
            scaler = field(spec, "scaler", dict, where)
            self._mean = np.asarray(field(scaler, "mean", list, f"{where}.scaler"), np.float64)
            self._std = np.asarray(field(scaler, "std", list, f"{where}.scaler"), np.float64)
            if (
                self._mean.shape != (self.encoder.input_size,)
                or self._std.shape != self._mean.shape
            ):
                raise ValueError(f"{where}.scaler: expected {self.encoder.input_size} features")
        self.reset()

    # ------------------------------------------------------------------ whole sequences

    def predict_proba(self, inputs: Any) -> Array:
        """Class probabilities ``(N, C)`` of texts, or of numeric sequences ``(N, L, F)`` (a
        list of ``(L_i, F)`` arrays for varying lengths), as ``SequenceClassifier``'s."""
        examples = [inputs] if isinstance(inputs, str) else list(inputs)
        rows = []
        for position, example in enumerate(examples):
            x = self._inputs(example, position)  # (L, H_in)
            output, final = self.encoder.run(x)  # (L, D * S_0)
            top = final[0][-(2 if self.encoder.bidirectional else 1) :]  # (D, S_0)
            pooled = {"last": top.reshape(-1), "mean": output.mean(0), "max": output.max(0)}
            rows.append(self._softmax(np.concatenate([pooled[p] for p in self.pooling])))
        return np.stack(rows)

    def predict(self, inputs: Any) -> Array:
        """The likeliest class of each input, ``(N,)``."""
        return np.array(self.classes)[self.predict_proba(inputs).argmax(axis=1)]

    # ------------------------------------------------------------------ streaming

    def step(self, item: Any) -> Array:
        """Read one token (a text model: a word or a character, as it was fitted) or one step
        ``(F,)`` per stream; return the class probabilities of each sequence read so far.

        Only a one-directional encoder streams (a backward direction needs the end first).

        Args:
            item: one stream: a str (text) or ``(F,)`` (numeric); ``N`` independent streams:
                a list (tuple) of ``N`` str, or ``(N, F)``. Every step must then have the same
                ``N`` (the encoder state's batch) until :meth:`reset`.

        Returns:
            ``(C,)`` for one stream, ``(N, C)`` for a batch.
        """
        if self.kind == "text":
            if isinstance(item, str):
                x = self._embedding[self._index.get(item, _UNK)]  # (H_in,)
            elif isinstance(item, (list, tuple)) and all(isinstance(t, str) for t in item):
                if not item:
                    raise ValueError(
                        "item: expected a non-empty batch (one str per stream), got []"
                    )
                x = self._embedding[[self._index.get(t, _UNK) for t in item]]  # (N, H_in)
            else:
                raise TypeError(
                    f"item: expected a {self.tokens} token (str) or a list of them (one per "
                    f"stream), got {item!r}"
                )
        else:
            array = np.asarray(item, np.float64)
            if (
                array.ndim not in (1, 2)
                or array.shape[-1] != self.encoder.input_size
                or not len(array)
            ):
                raise ValueError(
                    f"item: expected shape (F,) or (N >= 1, F) with F = {self.encoder.input_size}, "
                    f"got {array.shape}"
                )
            x = (array - self._mean) / self._std
            # refused before it enters the state, which a NaN or an overflow would spoil for good
            if not (np.abs(x) < np.finfo(self.encoder.dtype).max).all():
                raise ValueError(
                    f"item: expected finite numbers the model's {self.encoder.dtype} holds after "
                    f"scaling, got {item!r}"
                )
        output = self.encoder.step(x)  # (S_0,) or (N, S_0)
        rows = output.reshape(-1, output.shape[-1])  # (N, S_0)
        self._count += 1
        self._sum = rows if self._sum is None else self._sum + rows
        self._max = rows if self._max is None else np.maximum(self._max, rows)
        pooled = {"last": rows, "mean": self._sum / self._count, "max": self._max}
        probabilities = self._softmax(np.concatenate([pooled[p] for p in self.pooling], axis=1))
        return probabilities[0] if output.ndim == 1 else probabilities

    def reset(self) -> None:
        """Start new sequences: the next :meth:`step` may take any number of streams."""
        self.encoder.reset()
        self._count, self._sum, self._max = 0, None, None

    @property
    def state(self) -> tuple[tuple[Array, ...], int, Array, Array] | None:
        """The streams' state, or None before the first :meth:`step`: ``(encoder state, steps
        read, running sum (N, S_0), running max (N, S_0))``, the encoder's as
        :attr:`StreamingRNN.state` (copies). Assign such a value (``(S_0,)`` sums and
        ``(num_layers, S_k)`` states for one stream) to resume the streams; None resets."""
        if self._sum is None:
            return None
        return self.encoder.state, self._count, self._sum.copy(), self._max.copy()

    @state.setter
    def state(self, value: tuple[Any, int, Any, Any] | None) -> None:
        if value is None:
            self.reset()
            return
        if not isinstance(value, tuple) or len(value) != 4:
            raise ValueError(
                "state: expected (encoder state, steps read, sum, max) or None, got "
                f"{type(value).__name__}"
            )
        encoder_state, count, total, largest = value
        if type(count) is not int or count < 1:
            raise ValueError(f"state[1]: expected the steps read, an int >= 1, got {count!r}")
        first = np.shape(encoder_state[0]) if isinstance(encoder_state, (tuple, list)) else ()
        shape = (first[1] if len(first) == 3 else 1, self.encoder.state_sizes[0])  # (N, S_0)
        pooled = [np.array(a, self.encoder.dtype, ndmin=2) for a in (total, largest)]  # (N, S_0)
        for k, array in zip((2, 3), pooled, strict=True):
            if array.shape != shape:
                raise ValueError(
                    f"state[{k}]: expected shape {shape} (streams, S_0) to match the encoder "
                    f"state, got {np.shape(value[k])}"
                )
        self.encoder.state = encoder_state  # checks it
        self._count, self._sum, self._max = count, *pooled

    # ------------------------------------------------------------------ helpers

    def _inputs(self, example: Any, position: int) -> Array:
        """One example as encoder inputs ``(L, H_in)`` float32."""
        if self.kind == "text":
            if not isinstance(example, str):
                raise TypeError(f"inputs[{position}]: expected a str, got {type(example).__name__}")
            tokens = TOKENIZERS[self.tokens](example)[: self.max_length]
            if not tokens:
                raise ValueError(
                    f"inputs[{position}]: expected a text with at least one {self.tokens} token, "
                    f"got {example!r}"
                )
            return self._embedding[[self._index.get(t, _UNK) for t in tokens]]
        array = np.asarray(example, dtype=np.float64)
        if array.ndim != 2 or len(array) == 0 or array.shape[1] != self.encoder.input_size:
            raise ValueError(
                f"inputs[{position}]: expected a sequence of shape (L >= 1, "
                f"{self.encoder.input_size}), got shape {array.shape}"
            )
        return ((array[: self.max_length] - self._mean) / self._std).astype(np.float32)

    def _softmax(self, pooled: Array) -> Array:
        """``(..., P * D * S_0)`` -> ``(..., C)``."""
        logits = (pooled @ self._head_weight + self._head_bias).astype(np.float64)
        probabilities = np.exp(logits - logits.max(axis=-1, keepdims=True))
        return probabilities / probabilities.sum(axis=-1, keepdims=True)
