"""What every task model shares: its fitted state and the properties read from it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

import torch
from torch import Tensor, nn

from rnnkit.train import History, ModelFileError, TrainConfig, load_model, save_model
from rnnkit.train.io import first_difference

if TYPE_CHECKING:  # typing.Self is new in Python 3.11
    from typing import Self

Fitted = TypeVar("Fitted")  # a task's dataclass of what fit() learned (scaler, vocabulary, ...)
Network = TypeVar("Network", bound=nn.Module)


class Task(Generic[Fitted, Network]):
    """Base of the task models: ``network`` and ``_fitted`` are None until fit() or load().

    A task is built from its config dataclass (``config_type``) or from that dataclass's
    fields as keyword options, plus how to train it.
    """

    task: ClassVar[str]  # its name in a model directory's config.json
    config_type: ClassVar[type]
    network: Network | None = None
    _fitted: Fitted | None = None

    def __init__(
        self, config: Any = None, training: TrainConfig | None = None, **options: Any
    ) -> None:
        if config is not None and options:
            name = type(self).__name__
            raise TypeError(f"{name}: pass either config or keyword options, not both")
        self.config = config or self.config_type(**options)
        self.training = training or TrainConfig()

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
        fitted model's own when None)."""
        network = self._require_network()
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


def build_network(
    directory: str | Path, make: Callable[[], nn.Module], weights: dict[str, Tensor]
) -> nn.Module:
    """The network ``make()`` builds, holding ``weights`` (a model folder's).

    ``make`` runs on the meta device first (no memory), and its parameter names and shapes
    must be the file's: a ``config.json`` that asks for sizes its weights do not have fails
    here, in one line, before anything is allocated.

    Raises:
        ModelFileError: naming the first tensor that differs.
    """
    with torch.device("meta"):
        skeleton = make()
    expected = {name: tuple(t.shape) for name, t in skeleton.state_dict().items()}
    found = {name: tuple(t.shape) for name, t in weights.items()}
    name = first_difference(found, expected)
    if name is not None:
        raise ModelFileError(
            f"model: {str(directory)!r} does not hold the weights its config.json describes: "
            f"{name} is {found.get(name, 'missing')} in the file, the config makes it "
            f"{expected.get(name, 'absent')}"
        )
    network = make()
    network.load_state_dict(weights)
    return network
