"""``rnnkit seq2seq``: train (or load) an attention encoder-decoder, score greedy and beam
decoding on held-out pairs, translate a text and draw its attention map.

Register with::

    from rnnkit.commands import seq2seq
    app.command("seq2seq")(seq2seq.command)
"""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

from rich.table import Table
from typer import Option

from rnnkit.commands._common import (
    Devices,
    NumNodes,
    Resume,
    Strategy,
    TaskDefaults,
    console,
    evaluation_source,
    further_process,
    user_errors,
)

MODEL = TaskDefaults("rnnkit.tasks.seq2seq:Seq2SeqConfig")
TRAINING = TaskDefaults("rnnkit.tasks.seq2seq:Seq2Seq.default_training")
DECODING = TaskDefaults("rnnkit.tasks.seq2seq:Seq2Seq.translate")
DATES = TaskDefaults("rnnkit.data.dates:date_pairs")


@user_errors
def command(
    data: Annotated[
        str | None, Option(help="dates (generated date normalisation) or a source<TAB>target file.")
    ] = None,
    model: Annotated[
        Path | None, Option("--model", help="Load this model folder instead of training.")
    ] = None,
    translate: Annotated[
        str | None, Option(help="Text to translate (and draw the attention map of).")
    ] = None,
    attention: Annotated[
        str, Option(help="bahdanau, luong-dot or luong-general.")
    ] = MODEL.attention,
    beam: Annotated[int, Option(min=1, help="Beam size compared with greedy decoding.")] = 4,
    length_penalty: Annotated[
        float, Option(min=0.0, help="GNMT length penalty alpha.")
    ] = DECODING.length_penalty,
    cell: Annotated[str, Option(help="Recurrent layer: rnn, lstm, gru, ...")] = MODEL.cell,
    tokens: Annotated[str, Option(help="char or word.")] = MODEL.tokens,
    embedding_size: Annotated[int, Option(min=1)] = MODEL.embedding_size,
    hidden_size: Annotated[int, Option(min=1)] = MODEL.hidden_size,
    num_layers: Annotated[int, Option(min=1, help="Encoder layers.")] = MODEL.num_layers,
    decoder_layers: Annotated[int, Option(min=1)] = MODEL.decoder_layers,
    residual: Annotated[
        bool, Option(help="Residual connections between decoder layers.")
    ] = MODEL.residual,
    scheduled_sampling: Annotated[
        float, Option(help="Final own-prediction rate.")
    ] = MODEL.scheduled_sampling,
    dropout: Annotated[float, Option(min=0.0, max=0.99)] = MODEL.dropout,
    epochs: Annotated[int, Option(min=1, help="Maximum training epochs.")] = TRAINING.max_epochs,
    batch_size: Annotated[int, Option(min=1)] = TRAINING.batch_size,
    learning_rate: Annotated[float, Option(min=0.0)] = TRAINING.learning_rate,
    train_size: Annotated[
        int, Option(min=1, help="Generated training pairs (dates).")
    ] = DATES.train,
    test_size: Annotated[
        int, Option(min=1, help="Held-out test pairs (dates: unseen days).")
    ] = DATES.test,
    test_fraction: Annotated[float, Option(help="Share of a file's pairs for testing.")] = 0.1,
    seed: Annotated[int, Option()] = TRAINING.seed,
    progress: Annotated[bool, Option("--progress/--no-progress")] = True,
    out: Annotated[Path, Option(help="Folder for the model, log and figure.")] = Path(
        "runs/seq2seq"
    ),
    resume: Resume = False,
    devices: Devices = TRAINING.devices,
    num_nodes: NumNodes = TRAINING.num_nodes,
    strategy: Strategy = TRAINING.strategy,
) -> None:
    """Train an encoder-decoder with attention (or load one); score greedy and beam search.

    Trains on DATA's training part (or loads --model), prints the exact match of greedy and
    beam decoding on its test part, and draws an attention map (of --translate, or of the
    first test source) to OUT/attention.png."""
    from rnnkit.tasks.seq2seq import Seq2Seq
    from rnnkit.viz import plot_attention

    if model is None and data is None:
        raise ValueError("data: give --data dates|FILE.tsv to train a model, or --model DIR")
    test_pairs = None
    source = {
        "data": data,
        "train_size": train_size,
        "test_size": test_size,
        "test_fraction": test_fraction,
        "seed": seed,
    }
    if data is not None:
        train_pairs, test_pairs = _load(source)
    if model is not None:
        seq2seq = Seq2Seq.load(model)
    else:
        seq2seq = Seq2Seq(
            cell=cell,
            tokens=tokens,
            attention=attention,
            embedding_size=embedding_size,
            hidden_size=hidden_size,
            num_layers=num_layers,
            decoder_layers=decoder_layers,
            residual=residual,
            scheduled_sampling=scheduled_sampling,
            dropout=dropout,
            training=replace(
                Seq2Seq.default_training,
                max_epochs=epochs,
                batch_size=batch_size,
                learning_rate=learning_rate,
                seed=seed,
                devices=devices,
                num_nodes=num_nodes,
                strategy=strategy,
            ),
        )
        console.print(
            f"Training a {cell} encoder-decoder ({attention} attention) on {data}: "
            f"{len(train_pairs):,} pairs for training and validation ..."
        )
        sources, targets = zip(*train_pairs, strict=True)
        seq2seq.fit(sources, targets, log_dir=out / "logs", progress=progress, resume=resume)
        if further_process():  # the model, scores and figure come from global rank 0
            return
        saved = seq2seq.save(out / "model", {"source": source})
        console.print(f"Model: {saved}")
    if test_pairs is not None:
        _report(seq2seq, test_pairs, data, beam, length_penalty)
    text = translate
    if text is None and test_pairs is not None:  # the first test source the model can read
        text = next((s for s, _ in test_pairs if not seq2seq.unknown_tokens(s)), None)
    if text is None:
        raise ValueError("translate: give --translate TEXT (none of the test sources is readable)")
    greedy = seq2seq.translate(text)
    searched = seq2seq.translate(text, beam_size=beam, length_penalty=length_penalty)
    console.print(f"{text!r} -> greedy {greedy!r}, beam {beam} {searched!r}", highlight=False)
    weights, source_tokens, output_tokens = seq2seq.attention(text)
    figure = plot_attention(
        weights,
        source_tokens,
        output_tokens,
        out / "attention.png",
        title=f"Attention ({seq2seq.config.attention})",
    )
    console.print(f"Attention map: {figure}")


def evaluate(model_dir: Path, data: str | None) -> None:
    """Re-score a saved encoder-decoder on the test pairs of the data it was trained on
    (``data``: its file)."""
    from rnnkit.tasks.seq2seq import Seq2Seq

    seq2seq = Seq2Seq.load(model_dir)
    source = evaluation_source(model_dir, seq2seq.metadata.get("source"), data)
    penalty = DECODING.length_penalty()
    _report(seq2seq, _load(source)[1], source["data"], beam=4, length_penalty=penalty)


def predict(model_dir: Path, input: str) -> None:
    """Print the beam-search (4) translation of ``input``."""
    from rnnkit.tasks.seq2seq import Seq2Seq

    print(Seq2Seq.load(model_dir).translate(input, beam_size=4))


def _report(
    seq2seq: Any, test_pairs: list[tuple[str, str]], data: str, beam: int, length_penalty: float
) -> None:
    sources, targets = zip(*test_pairs, strict=True)
    table = Table(title=f"{data}: {len(test_pairs):,} held-out pairs", min_width=40)
    table.add_column("decoding")
    table.add_column("exact match", justify="right")
    for name, size in (("greedy", 1), (f"beam {beam}", beam)):
        report = seq2seq.evaluate(sources, targets, size, length_penalty)
        table.add_row(name, f"{report['exact_match']:.4f}")
    console.print(table)


def _load(source: dict[str, Any]) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(training pairs, test pairs): generated dates on disjoint days, or a seeded split of
    a file's pairs."""
    from rnnkit.data.dates import date_pairs, read_pairs

    data, test_fraction, seed = source["data"], source["test_fraction"], source["seed"]
    if data == "dates":
        return date_pairs(train=source["train_size"], test=source["test_size"], seed=seed)
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction: expected a float in (0, 1), got {test_fraction}")
    pairs = read_pairs(data)
    random.Random(seed).shuffle(pairs)
    cut = round(len(pairs) * test_fraction)
    if not 0 < cut < len(pairs) - 1:
        raise ValueError(
            f"data: {len(pairs)} pairs are too few to hold out test_fraction {test_fraction} "
            f"and still train"
        )
    return pairs[cut:], pairs[:cut]
