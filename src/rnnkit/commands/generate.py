"""``rnnkit generate``: train (or load) a character-level language model and sample from it."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

from typer import Option

from rnnkit.commands._common import (
    Devices,
    NumNodes,
    Resume,
    Strategy,
    TaskDefaults,
    bundled,
    console,
    evaluation_source,
    further_process,
    user_errors,
)

MODEL = TaskDefaults("rnnkit.tasks.generator:GeneratorConfig")
TRAINING = TaskDefaults("rnnkit.tasks.generator:Generator.default_training")
FIT = TaskDefaults("rnnkit.tasks.generator:Generator.fit")
SAMPLE = TaskDefaults("rnnkit.tasks.generator:Generator.sample")


@user_errors
def command(
    data: Annotated[
        str | None, Option(help="A bundled text (shakespeare, korean) or a UTF-8 .txt file.")
    ] = None,
    model: Annotated[
        Path | None, Option("--model", help="Load this model folder instead of training.")
    ] = None,
    prompt: Annotated[
        str | None, Option(help="Text to continue (default: newline, or the commonest character).")
    ] = None,
    length: Annotated[int, Option(min=1, help="Characters to generate.")] = 300,
    temperature: Annotated[float, Option(help="Sampling temperature (> 0).")] = 0.8,
    top_k: Annotated[
        int | None, Option(min=1, help="Sample among the k likeliest.")
    ] = SAMPLE.top_k,
    cell: Annotated[str, Option(help="Recurrent layer: rnn, lstm, gru, ...")] = MODEL.cell,
    hidden_size: Annotated[int, Option(min=1)] = MODEL.hidden_size,
    num_layers: Annotated[int, Option(min=1)] = MODEL.num_layers,
    sequence_length: Annotated[
        int, Option(min=1, help="Characters per training chunk.")
    ] = MODEL.sequence_length,
    carry_state: Annotated[
        bool, Option(help="Train on streams read in order, carrying the state (TBPTT).")
    ] = MODEL.carry_state,
    dropout: Annotated[float, Option(min=0.0, max=0.99)] = MODEL.dropout,
    epochs: Annotated[int, Option(min=1, help="Maximum training epochs.")] = TRAINING.max_epochs,
    batch_size: Annotated[int, Option(min=1)] = TRAINING.batch_size,
    learning_rate: Annotated[float, Option(min=0.0)] = TRAINING.learning_rate,
    final_learning_rate: Annotated[
        float | None,
        Option(min=0.0, help="Decay the learning rate to this on a cosine over the epochs."),
    ] = TRAINING.final_learning_rate,
    warmup_steps: Annotated[
        int, Option(min=0, help="Raise the learning rate linearly over the first steps.")
    ] = TRAINING.warmup_steps,
    weight_decay: Annotated[
        float, Option(min=0.0, help="Decoupled weight decay (AdamW), e.g. 0.1.")
    ] = TRAINING.weight_decay,
    precision: Annotated[
        str, Option(help="32, or bf16-mixed: bfloat16 autocast, faster on AVX-512 BF16 CPUs.")
    ] = TRAINING.precision,
    ema_decay: Annotated[
        float | None,
        Option(help="Keep the moving average of the weights over steps, e.g. 0.99 (0 < d < 1)."),
    ] = TRAINING.ema_decay,
    val_fraction: Annotated[
        float, Option(help="Last part of the text held out.")
    ] = FIT.val_fraction,
    seed: Annotated[int, Option(help="Seeds training and sampling.")] = TRAINING.seed,
    out: Annotated[Path, Option(help="Folder for the log and the model.")] = Path("runs/generate"),
    resume: Resume = False,
    devices: Devices = TRAINING.devices,
    num_nodes: NumNodes = TRAINING.num_nodes,
    strategy: Strategy = TRAINING.strategy,
) -> None:
    """Train a character-level language model (or load one) and sample from it.

    Prints a sample and the validation loss in nats per character next to a unigram
    baseline."""
    from rnnkit.data import read_text
    from rnnkit.tasks.generator import Generator, split_text

    if model is not None:
        generator = Generator.load(model)
        recorded = generator.metadata
        # the folder's own data only by a bundled name: it never chooses a file to open
        data = data or (recorded.get("data") if bundled(recorded.get("data")) else None)
        val_fraction = recorded.get("val_fraction", val_fraction) if data else val_fraction
        text = None if data is None else read_text(data)
    elif data is None:
        raise ValueError("data: give --data TEXT to train a model, or --model DIR to load one")
    else:
        text = read_text(data)
        generator = Generator(
            cell=cell,
            hidden_size=hidden_size,
            num_layers=num_layers,
            sequence_length=sequence_length,
            dropout=dropout,
            carry_state=carry_state,
            training=replace(
                Generator.default_training,
                max_epochs=epochs,
                batch_size=batch_size,
                learning_rate=learning_rate,
                final_learning_rate=final_learning_rate,
                warmup_steps=warmup_steps,
                weight_decay=weight_decay,
                seed=seed,
                precision=precision,
                ema_decay=ema_decay,
                devices=devices,
                num_nodes=num_nodes,
                strategy=strategy,
            ),
        )
        split_text(text, val_fraction)  # check the split before announcing the training
        console.print(f"Training a {cell} language model on {data} ({len(text):,} characters) ...")
        generator.fit(text, val_fraction=val_fraction, log_dir=out / "logs", resume=resume)
        if further_process():  # the model, sample and report come from global rank 0
            return
        saved = generator.save(out / "model", {"data": data, "val_fraction": val_fraction})
        console.print(f"Model: {saved}")
    if prompt is None:
        vocabulary = generator.vocabulary
        prompt = "\n" if "\n" in vocabulary else vocabulary.tokens[2]
    sample = generator.sample(prompt, length, temperature, top_k, seed)
    console.print(prompt + sample, markup=False, highlight=False, soft_wrap=True)
    if text is not None:
        _report(generator, text, val_fraction, data)


def evaluate(model_dir: Path, data: str | None) -> None:
    """Re-measure a saved language model on the validation part of the text it was
    trained on (``data``: its file)."""
    from rnnkit.data import read_text
    from rnnkit.tasks.generator import Generator

    generator = Generator.load(model_dir)
    recorded = generator.metadata.get("data")
    source = evaluation_source(model_dir, None if recorded is None else {"data": recorded}, data)
    text = read_text(source["data"])
    _report(generator, text, generator.metadata["val_fraction"], source["data"])


def predict(model_dir: Path, input: str) -> None:
    """Print ``input`` and 200 sampled characters that continue it (temperature 0.8, seed 0)."""
    from rnnkit.tasks.generator import Generator

    print(input + Generator.load(model_dir).sample(input, 200, 0.8, None, 0))


def _report(generator: Any, text: str, val_fraction: float, data: str) -> None:
    from rnnkit.tasks.generator import split_text, unigram_loss

    train_text, val_text = split_text(text, val_fraction)
    report = generator.evaluate(val_text)
    console.print(
        f"validation (last {val_fraction:g} of {data}, {report['characters']:,} characters): "
        f"{report['loss_nats_per_char']:.4f} nats/char = {report['bits_per_char']:.4f} "
        f"bits/char; unigram baseline {unigram_loss(train_text, val_text):.4f} nats/char",
        highlight=False,
    )
