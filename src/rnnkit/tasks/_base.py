"""What every task model shares: its fitted state and the properties read from it."""

from __future__ import annotations

from typing import Any, ClassVar, Generic, TypeVar

from torch import nn

from rnnkit.train import History, TrainConfig

Fitted = TypeVar("Fitted")  # a task's dataclass of what fit() learned (scaler, vocabulary, ...)
Network = TypeVar("Network", bound=nn.Module)


class Task(Generic[Fitted, Network]):
    """Base of the task models: ``network`` and ``_fitted`` are None until fit() or load().

    A task is built from its config dataclass (``config_type``) or from that dataclass's
    fields as keyword options, plus how to train it.
    """

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
