"""Argument checks shared by the layers, cells, tasks and readers: one wording for each error.

Every message starts ``"<argument>: expected ..., got ..."``. Where torch.nn refuses the same
thing, the message ends with torch's own words in parentheses and the error is also an
instance of the class torch raises (:class:`InputError`, :class:`InputDtypeError`), so code
written against torch.nn (``except RuntimeError``, a match on torch's message) keeps working.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


class InputError(ValueError, RuntimeError):
    """A tensor that does not fit the module (its shape, size or device).

    A ``ValueError``, as rnnkit raises for a bad value, and a ``RuntimeError``, as torch.nn
    raises for the same input.
    """


class InputDtypeError(InputError, TypeError):
    """A tensor of the wrong dtype: also a ``TypeError`` (rnnkit's class for it); torch.nn
    raises ``ValueError`` in its layers and ``RuntimeError`` in its cells."""


def _torch(torch_says: str | None) -> str:
    """The suffix that quotes torch.nn's message for the same error."""
    return "" if torch_says is None else f" ({torch_says})"


def check_int(name: str, value: object, minimum: int = 1, torch_says: str | None = None) -> int:
    """Return ``value`` if it is an ``int >= minimum``; raise TypeError/ValueError otherwise.

    ``torch_says``: torch.nn's message for a value below ``minimum``, quoted after rnnkit's
    (then a TypeError quotes torch's wording for a wrong type too).
    """
    if isinstance(value, bool) or not isinstance(value, int):
        kind = type(value).__name__
        torch_type = None if torch_says is None else f"{name} should be of type int, got: {kind}"
        raise TypeError(f"{name}: expected an int, got {kind} {value!r}{_torch(torch_type)}")
    if value < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {value}{_torch(torch_says)}")
    return value


def check_bool(name: str, value: object, torch_checks: bool = False) -> bool:
    """``value`` must be a bool; ``torch_checks``: torch.nn checks this argument too, so the
    message quotes its words."""
    if not isinstance(value, bool):
        kind = type(value).__name__
        torch_says = f"{name} should be of type bool, got: {kind}" if torch_checks else None
        raise TypeError(f"{name}: expected a bool, got {kind} {value!r}{_torch(torch_says)}")
    return value


class _RateError(TypeError, ValueError):
    """A rate that is not a number: rnnkit's TypeError, torch.nn's ValueError."""


def check_rate(
    name: str, value: object, closed: bool = False, torch_says: str | None = None
) -> float:
    """A probability in ``[0, 1)`` (a rate of 1 would drop everything), or ``[0, 1]`` when
    ``closed`` (torch.nn's layers take a dropout of 1)."""
    interval = "[0, 1]" if closed else "[0, 1)"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _RateError(
            f"{name}: expected a float in {interval}, got {type(value).__name__} {value!r}"
            f"{_torch(torch_says)}"
        )
    if not (0.0 <= value <= 1.0 if closed else 0.0 <= value < 1.0):
        raise ValueError(f"{name}: expected a float in {interval}, got {value}{_torch(torch_says)}")
    return float(value)


def check_positive_float(name: str, value: object) -> float:
    """A finite real number ``> 0`` (ints accepted, bools not)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name}: expected a positive float, got {type(value).__name__} {value!r}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name}: expected a finite float > 0, got {value}")
    return float(value)


def check_choice(
    name: str, value: object, choices: tuple[str, ...], torch_says: str | None = None
) -> str:
    if value not in choices:
        raise ValueError(
            f"{name}: expected one of {', '.join(map(repr, choices))}, got {value!r}"
            f"{_torch(torch_says)}"
        )
    return value  # type: ignore[return-value]


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """The dtype autocast computes in on ``device`` now, or None outside autocast."""
    if not torch.is_autocast_enabled(device.type):
        return None
    return torch.get_autocast_dtype(device.type)


def check_dtype(dtype: object) -> torch.dtype | None:
    """A floating-point ``torch.dtype`` for parameters, or None for torch's default."""
    if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise TypeError(f"dtype: expected a floating-point torch.dtype or None, got {dtype!r}")
    return dtype


def check_tensor(name: str, value: object) -> Tensor:
    if not isinstance(value, Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(value).__name__}")
    return value


def check_tensor_like(name: str, value: object, reference: Tensor) -> Tensor:
    """``value`` must be a tensor with ``reference``'s dtype (or, under autocast, the
    autocast dtype, as torch.nn's layers take) and device."""
    check_tensor(name, value)
    if value.dtype != reference.dtype and value.dtype != autocast_dtype(reference.device):
        fix = f"convert it with .to({reference.dtype})"
        if value.dtype.is_floating_point:
            fix += f" or the module with .to({value.dtype})"
        raise InputDtypeError(
            f"{name}: expected dtype {reference.dtype} (the module's parameters), got "
            f"{value.dtype}; {fix} (RNN {name} dtype ({value.dtype}) does not match weight "
            f"dtype ({reference.dtype}). Convert {name}: {name}.to({reference.dtype}), or "
            f"convert model: model.to({value.dtype}))"
        )
    if value.device != reference.device:
        raise InputError(
            f"{name}: expected a tensor on {reference.device} (the module's parameters), "
            f"got one on {value.device} (Input and parameter tensors are not at the same "
            "device)"
        )
    return value


def check_shape(
    name: str, value: Tensor, expected: tuple[int, ...], legend: str, torch_says: str | None = None
) -> None:
    if tuple(value.shape) != expected:
        raise InputError(
            f"{name}: expected shape {legend} = {expected}, got {tuple(value.shape)}"
            f"{_torch(torch_says)}"
        )


def check_rank(
    name: str, value: Tensor, ranks: tuple[int, ...], legend: str, torch_says: str
) -> None:
    """``value`` must have one of ``ranks`` dimensions (``legend`` gives the expected shape)."""
    if value.dim() not in ranks:
        raise InputError(
            f"{name}: expected shape {legend}, got {tuple(value.shape)} ({torch_says})"
        )


def check_width(name: str, value: Tensor, width: int, legend: str, torch_says: str) -> None:
    """``value``'s last dimension must be ``width`` (``legend`` names it, e.g. ``"H_in =
    input_size"``); ``torch_says``: torch.nn's message for the same mismatch."""
    if value.shape[-1] != width:
        raise InputError(
            f"{name}: expected {legend} = {width} features in the last dimension, got shape "
            f"{tuple(value.shape)} ({torch_says})"
        )


def check_finite(name: str, value: Tensor) -> None:
    finite = torch.isfinite(value)
    if not bool(finite.all()):
        bad = value[~finite][0].item()
        raise ValueError(f"{name}: expected finite values (check_finite=True), got {bad}")


def check_lengths(lengths: object, batch: int, length: int, device: torch.device) -> Tensor:
    """Validate ``lengths`` for a padded batch of ``batch`` sequences of ``length`` steps.

    Returns:
        An int64 tensor ``(N,)`` on ``device``.
    """
    if isinstance(lengths, (list, tuple)):
        if not all(isinstance(n, int) and not isinstance(n, bool) for n in lengths):
            raise TypeError(f"lengths: expected integers, got {lengths!r}")
        lengths = torch.tensor(lengths, dtype=torch.int64)
    if not isinstance(lengths, Tensor):
        raise TypeError(f"lengths: expected a 1-D integer tensor, got {type(lengths).__name__}")
    if lengths.dtype.is_floating_point or lengths.dtype.is_complex or lengths.dtype == torch.bool:
        raise TypeError(f"lengths: expected an integer dtype, got {lengths.dtype}")
    if lengths.dim() != 1 or lengths.numel() != batch:
        raise ValueError(f"lengths: expected shape (N,) = ({batch},), got {tuple(lengths.shape)}")
    if batch == 0:
        return lengths.to(device=device, dtype=torch.int64)
    low, high = int(lengths.min()), int(lengths.max())
    if low < 0 or high > length:
        raise ValueError(
            f"lengths: expected values in [0, L] = [0, {length}], got min {low} and max {high}"
        )
    return lengths.to(device=device, dtype=torch.int64)


def check_state_structure(hx: object, count: int) -> tuple[object, ...]:
    """``hx`` as a tuple of ``count`` items: a tensor where one is expected, else a tuple
    (or list, as torch.nn accepts) of ``count``."""
    items = (hx,) if isinstance(hx, Tensor) else tuple(hx) if isinstance(hx, list) else hx
    if not isinstance(items, tuple) or len(items) != count:
        expected = "a tensor" if count == 1 else f"a tuple of {count} tensors"
        if isinstance(hx, Tensor):
            given = "a tensor"
        elif isinstance(hx, (tuple, list)):
            given = f"a {type(hx).__name__} of {len(hx)}"
        else:
            given = type(hx).__name__
        raise TypeError(f"hx: expected {expected}, got {given}")
    return items
