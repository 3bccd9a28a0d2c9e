"""One task per topology: the model, its training, metrics, baselines and files."""

from rnnkit.tasks.classifier import ClassifierConfig, ClassifierNetwork, SequenceClassifier
from rnnkit.tasks.forecaster import Forecaster, ForecasterConfig, ForecastNetwork, ForecastReport

__all__ = [
    "ClassifierConfig",
    "ClassifierNetwork",
    "ForecastNetwork",
    "ForecastReport",
    "Forecaster",
    "ForecasterConfig",
    "SequenceClassifier",
]
