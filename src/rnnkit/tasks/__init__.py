"""One task per topology: the model, its training, metrics, baselines and files."""

from rnnkit.tasks.forecaster import Forecaster, ForecasterConfig, ForecastNetwork, ForecastReport

__all__ = ["ForecastNetwork", "ForecastReport", "Forecaster", "ForecasterConfig"]
