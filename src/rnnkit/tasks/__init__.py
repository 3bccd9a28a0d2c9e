"""One task per topology: the model, its training, metrics, baselines and files."""

from rnnkit.tasks._base import Task
from rnnkit.tasks.captioner import Captioner, CaptionerConfig
from rnnkit.tasks.classifier import ClassifierConfig, ClassifierNetwork, SequenceClassifier
from rnnkit.tasks.ctc import CTCConfig, CTCRecognizer
from rnnkit.tasks.forecaster import Forecaster, ForecasterConfig, ForecastNetwork, ForecastReport
from rnnkit.tasks.generator import Generator, GeneratorConfig
from rnnkit.tasks.seq2seq import Seq2Seq, Seq2SeqConfig
from rnnkit.tasks.tagger import SequenceTagger, SpaceRestorer, TaggerConfig

__all__ = [
    "CTCConfig",
    "CTCRecognizer",
    "Captioner",
    "CaptionerConfig",
    "ClassifierConfig",
    "ClassifierNetwork",
    "ForecastNetwork",
    "ForecastReport",
    "Forecaster",
    "ForecasterConfig",
    "Generator",
    "GeneratorConfig",
    "Seq2Seq",
    "Seq2SeqConfig",
    "SequenceClassifier",
    "SequenceTagger",
    "SpaceRestorer",
    "TaggerConfig",
    "Task",
]
