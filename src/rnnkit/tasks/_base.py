"""What every task model shares: its fitted state and the properties read from it."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

import torch
from torch import Tensor, nn

from rnnkit.train import History, ModelFileError, TrainConfig, load_model, save_model
from rnnkit.train.distributed import is_global_zero
from rnnkit.train.io import first_difference

if TYPE_CHECKING:  # typing.Self is new in Python 3.11
    from typing import Self

Fitted = TypeVar("Fitted")  # a task's dataclass of what fit() learned (scaler, vocabulary, ...)
Network = TypeVar("Network", bound=nn.Module)


class Task(Generic[Fitted, Network]):
    """Base of the task models: ``network`` and ``_fitted`` are None until fit() or load().

    A task is built from its config dataclass (``config_type``) or from that dataclass's
    fields as keyword options, plus how to train it: ``training``, or a copy of the task's
    ``default_training``.
    """

    task: ClassVar[str]  # its name in a model directory's config.json
    config_type: ClassVar[type]
    default_training: ClassVar[TrainConfig] = TrainConfig()
    network: Network | None = None
    _fitted: Fitted | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if isinstance(cls.__dict__.get("load"), classmethod):
            cls.load = classmethod(_refusing_bad_fields(cls.__dict__["load"].__func__))

    def __init__(
        self, config: Any = None, training: TrainConfig | None = None, **options: Any
    ) -> None:
        if config is not None and options:
            name = type(self).__name__
            raise TypeError(f"{name}: pass either config or keyword options, not both")
        self.config = config or self.config_type(**options)
        self.training = training or replace(self.default_training)

    @property
    def history(self) -> History:
        """The training curves (per-epoch losses and the restored best epoch)."""
        return self._require_fitted().history  # type: ignore[attr-defined]

    @property
    def metadata(self) -> dict[str, Any]:
        """What the caller stored with the model (e.g. where its data came from)."""
        return self._require_fitted().metadata  # type: ignore[attr-defined]

    def _require_fitted(self) -> Fitted:
        if self._fitted is None:
            name = type(self).__name__
            raise RuntimeError(f"{name}: call fit() or {name}.load() first")
        return self._fitted

    def _require_network(self) -> Network:
        self._require_fitted()
        assert self.network is not None
        return self.network

    def _save(
        self, directory: str | Path, fitted_state: dict[str, Any], metadata: dict[str, Any] | None
    ) -> Path:
        """Write the weights and, as JSON, the configs, ``fitted_state`` (what fit() learned
        besides the weights: vocabulary, scaler, ...), the curves and ``metadata`` (the
        fitted model's own when None). Under DDP only global rank 0 writes; the others
        return the same path."""
        network = self._require_network()
        if not is_global_zero():  # every process of a DDP run executes the same save
            return Path(directory)
        state = {
            "model": asdict(self.config),
            "training": asdict(self.training),
            **fitted_state,
            "history": asdict(self.history),
            "metadata": self.metadata if metadata is None else metadata,
        }
        return save_model(directory, self.task, state, network.state_dict())

    @classmethod
    def _read(cls, directory: str | Path) -> tuple[Self, dict[str, Any], dict[str, Tensor]]:
        """A task built from a directory's configs, its JSON state and its weights."""
        state, weights = load_model(directory, cls.task)
        try:
            model = cls(cls.config_type(**state["model"]), TrainConfig(**state["training"]))
        except (TypeError, ValueError) as error:  # fields of other types, names or ranges
            raise ModelFileError(
                f"model: config.json in {str(directory)!r} holds an invalid configuration: {error}"
            ) from None
        return model, state, weights


def _refusing_bad_fields(load: Callable[..., Any]) -> Callable[..., Any]:
    """``load(cls, directory)`` raising a one-line :class:`ModelFileError` where a field of
    the wrong type or value (``"history": null``, ``"num_features": "abc"``) breaks the
    task's own reading of it, with whatever exception that would be."""

    @functools.wraps(load)
    def wrapper(cls: type, directory: str | Path, *args: Any, **kwargs: Any) -> Any:
        try:
            return load(cls, directory, *args, **kwargs)
        except ModelFileError:
            raise
        except (
            TypeError,
            ValueError,
            KeyError,
            IndexError,
            AttributeError,
            OverflowError,
            RuntimeError,
            RecursionError,
        ) as error:
            reason = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise ModelFileError(
                f"model: config.json in {str(directory)!r} holds an invalid field: {reason}"
            ) from None

    return wrapper


class _TooManyError(Exception):
    """Raised inside a module's constructor by :func:`_registrations_at_most`."""


@contextmanager
def _registrations_at_most(count: int) -> Iterator[None]:
    """Abort (raise :class:`_TooManyError`) a module construction in this thread that registers
    more than ``count`` parameters, buffers and submodules."""
    thread, made = threading.get_ident(), 0

    def hook(*_: object) -> None:
        nonlocal made
        if threading.get_ident() == thread:
            made += 1
            if made > count:
                raise _TooManyError

    registry = torch.nn.modules.module
    handles = [
        registry.register_module_parameter_registration_hook(hook),
        registry.register_module_buffer_registration_hook(hook),
        registry.register_module_module_registration_hook(hook),
    ]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def build_network(
    directory: str | Path, make: Callable[[], nn.Module], weights: dict[str, Tensor]
) -> nn.Module:
    """The network ``make()`` builds, holding ``weights`` (a model folder's).

    ``make`` runs on the meta device first (no memory), and its parameter names and shapes
    must be the file's: a ``config.json`` that asks for sizes its weights do not have fails
    here, in one line, before anything is allocated; one that asks for far more tensors
    than the file has (``num_layers`` 10**6) fails while the skeleton is being built, for
    building it would take hours.

    Raises:
        ModelFileError: naming the first tensor that differs.
    """
    try:
        with torch.device("meta"), _registrations_at_most(4 * len(weights) + 64):
            skeleton = make()
    except _TooManyError:
        raise ModelFileError(
            f"model: {str(directory)!r} does not hold the weights its config.json describes: "
            f"the config makes far more tensors than the {len(weights)} in the file"
        ) from None
    except (TypeError, ValueError, RuntimeError) as error:  # e.g. sizes whose product overflows
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ModelFileError(
            f"model: config.json in {str(directory)!r} describes no network rnnkit can build: "
            f"{reason}"
        ) from None
    expected = {name: tuple(t.shape) for name, t in skeleton.state_dict().items()}  # no memory
    found = {name: tuple(t.shape) for name, t in weights.items()}
    name = first_difference(found, expected)
    if name is not None:
        raise ModelFileError(
            f"model: {str(directory)!r} does not hold the weights its config.json describes: "
            f"{name} is {found.get(name, 'missing')} in the file, the config makes it "
            f"{expected.get(name, 'absent')}"
        )
    state = skeleton.state_dict()
    for name, tensor in weights.items():
        if tensor.dtype != state[name].dtype:  # load_state_dict would convert it silently
            raise ModelFileError(
                f"model: {str(directory)!r} does not hold the weights its config.json describes: "
                f"{name} is {tensor.dtype} in the file, the model's is {state[name].dtype}"
            )
    network = make()
    network.load_state_dict(weights)
    return network
