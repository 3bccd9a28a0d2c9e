"""Seq2Seq: the attention, masking, residual and sampling maths against hand computations,
learning against a trivial baseline, files, errors, the date data, the figure and the CLI."""

from __future__ import annotations

import datetime as dt
import importlib.util
import time
import warnings
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from rnnkit.cli import app
from rnnkit.data.dates import FIRST, FORMATS, LAST, date_pairs, read_pairs, write_date
from rnnkit.nn import LAYERS
from rnnkit.tasks.seq2seq import (
    Attention,
    Seq2Seq,
    Seq2SeqConfig,
    Seq2SeqNetwork,
    _TeacherForcing,
)
from rnnkit.train import ModelFileError, TrainConfig
from rnnkit.viz import plot_attention

EXAMPLE = Path(__file__).parents[1] / "examples" / "date_normalisation.py"
FAST = TrainConfig(max_epochs=3, batch_size=32, learning_rate=1e-2)


@pytest.fixture(scope="module")
def dates() -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    return date_pairs(train=1500, test=300, seed=0)


@pytest.fixture(scope="module")
def fitted(dates) -> Seq2Seq:
    """Trained to translate well (about a minute): for the test of what it learns."""
    torch.manual_seed(0)
    model = Seq2Seq(hidden_size=64, embedding_size=16, training=FAST)
    model.fit(*zip(*dates[0], strict=True), progress=False)
    return model


@pytest.fixture(scope="module")
def briefly(dates) -> Seq2Seq:
    """Briefly trained (it has learnt to end an answer): for the tests of decoding,
    attention, saving and errors, which hold for any such weights."""
    torch.manual_seed(0)
    model = Seq2Seq(hidden_size=32, embedding_size=8, training=replace(FAST, max_epochs=2))
    model.fit(*zip(*dates[0], strict=True), progress=False)
    return model


# ---------------------------------------------------------------- maths of the network


@pytest.mark.parametrize("kind", ["bahdanau", "luong-dot", "luong-general"])
def test_attention_matches_its_formula_and_ignores_padding(kind):
    torch.manual_seed(1)
    attention = Attention(kind, 6)
    memory, query = torch.randn(2, 5, 6), torch.randn(2, 6)
    lengths = torch.tensor([5, 3])
    padding = torch.arange(5) >= lengths.unsqueeze(1)  # (N, S)
    with torch.no_grad():
        context, weights = attention(query, attention.keys(memory), memory, padding)
    m, q = memory.double().numpy(), query.double().numpy()
    param = {name: p.detach().double().numpy() for name, p in attention.named_parameters()}
    if kind == "bahdanau":
        energy = np.tanh(m @ param["key.weight"].T + param["key.bias"]
                         + (q @ param["query.weight"].T)[:, None])  # fmt: skip
        scores = (energy @ param["energy.weight"].T)[..., 0]
    elif kind == "luong-dot":
        scores = np.einsum("nsh,nh->ns", m, q)
    else:
        scores = np.einsum("nsh,nh->ns", m @ param["key.weight"].T, q)
    for n, length in enumerate(lengths.tolist()):
        expected = np.exp(scores[n, :length] - scores[n, :length].max())
        expected /= expected.sum()
        np.testing.assert_allclose(weights[n, :length].numpy(), expected, rtol=1e-5, atol=1e-6)
        assert torch.all(weights[n, length:] == 0)
        np.testing.assert_allclose(context[n].numpy(), expected @ m[n, :length], atol=1e-5)


def _network(**options) -> Seq2SeqNetwork:
    torch.manual_seed(2)
    return Seq2SeqNetwork(9, 7, Seq2SeqConfig(hidden_size=8, embedding_size=4, **options)).eval()


@pytest.mark.parametrize(
    "options",
    [*({"cell": cell} for cell in sorted(LAYERS)), {"attention": "luong-dot", "cell": "gru"},
     {"attention": "luong-general", "num_layers": 2, "decoder_layers": 2, "residual": True,
      "input_feeding": False, "bidirectional": False}],
)  # fmt: skip
def test_padding_does_not_change_the_output(options):
    network = _network(**options)
    source, target = torch.tensor([[3, 4, 5]]), torch.tensor([[2, 4, 5, 6]])
    padded = torch.tensor([[3, 4, 5, 0, 0], [6, 7, 8, 3, 4]])
    with torch.no_grad():
        alone = network(source, torch.tensor([3]), target)
        batched = network(padded, torch.tensor([3, 5]), target.expand(2, -1))
    torch.testing.assert_close(batched[0], alone[0])


def test_residual_adds_the_layer_input():
    """With its recurrent layer zeroed, an Elman decoder layer outputs tanh(0) = 0: a residual
    second layer then passes its input through, so the network equals a one-layer one."""
    deep = {"cell": "rnn", "decoder_layers": 2}
    one = _network(cell="rnn")
    source, lengths, target = torch.tensor([[3, 4, 5]]), torch.tensor([3]), torch.tensor([[2, 5]])
    for residual, same in ((True, True), (False, False)):
        two = _network(residual=residual, **deep)
        two.load_state_dict(one.state_dict(), strict=False)
        with torch.no_grad():
            for p in two.decoder[1].parameters():
                p.zero_()
            equal = torch.allclose(two(source, lengths, target), one(source, lengths, target))
        assert equal is same


def test_scheduled_sampling_feeds_the_models_own_predictions():
    network = _network()
    source, lengths = torch.tensor([[3, 4, 5]]), torch.tensor([3])
    first, second = torch.tensor([[2, 4, 5, 6]]), torch.tensor([[2, 6, 3, 3]])
    with torch.no_grad():
        own = [network(source, lengths, t, sampling=1.0) for t in (first, second)]
        forced = [network(source, lengths, t, sampling=0.0) for t in (first, second)]
    torch.testing.assert_close(own[0], own[1])  # the targets after <s> are never read
    assert not torch.allclose(forced[0][:, 1:], forced[1][:, 1:])
    torch.testing.assert_close(own[0][:, 0], forced[0][:, 0])  # step 1 reads <s> either way


@pytest.mark.parametrize(
    "options",
    [{"attention": "luong-dot"}, {"attention": "luong-general", "cell": "gru"},
     {"decoder_layers": 2, "residual": True, "scheduled_sampling": 0.5},
     {"cell": "layernorm_lstm", "bidirectional": False, "input_feeding": False}],
)  # fmt: skip
def test_every_variant_learns_to_copy(options):
    """Copying 4-letter words: the loss falls far below the log(7) = 1.95 of guessing
    (6 letters and the end token)."""
    rng = np.random.default_rng(0)
    words = ["".join(rng.choice(list("abcdef"), 4)) for _ in range(320)]
    model = Seq2Seq(hidden_size=32, embedding_size=8, training=TrainConfig(
        max_epochs=5, batch_size=16, learning_rate=1e-2), **options)  # fmt: skip
    history = model.fit(words, words, progress=False)
    assert min(history.val_loss) < 0.5, history


def test_scheduled_sampling_grows_linearly_during_training_only():
    seen = []

    class Recorder(torch.nn.Module):
        def forward(self, source, lengths, target, sampling):
            seen.append(sampling)
            return torch.zeros(*target.shape, 5, requires_grad=True)

    loss, network = _TeacherForcing(0.4, total_steps=4), Recorder()
    batch = (
        torch.ones(1, 2, dtype=torch.long),
        torch.tensor([2]),
        torch.ones(1, 3, dtype=torch.long),
    )
    for _ in range(6):
        loss(network, batch)
    network.eval()
    loss(network, batch)
    assert seen == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4, 0.4, 0.0])


# ---------------------------------------------------------------- learning and decoding


@pytest.mark.slow
def test_learns_dates_far_above_a_constant_answer(fitted, dates):
    train_pairs, test_pairs = dates
    sources, targets = zip(*test_pairs, strict=True)
    commonest = Counter(t for _, t in train_pairs).most_common(1)[0][0]
    baseline = sum(t == commonest for t in targets) / len(targets)
    greedy = fitted.evaluate(sources, targets)["exact_match"]
    beam = fitted.evaluate(sources, targets, beam_size=3)["exact_match"]
    assert baseline == 0.0  # test days are never training days
    assert greedy > 0.8, greedy
    assert beam > 0.8, beam


def test_a_batch_translates_as_each_source_alone(briefly, dates):
    sources = [s for s, _ in dates[1][:12]]
    for beam in (1, 3):
        assert briefly.translate(sources, beam_size=beam) == [
            briefly.translate(s, beam_size=beam) for s in sources
        ]


def test_max_length_cuts_the_output(briefly):
    assert len(briefly.translate("March 5, 2021", max_length=4)) == 4
    assert len(briefly.translate("March 5, 2021", beam_size=2, max_length=4)) <= 4


def test_attention_rows_are_distributions_over_the_source(briefly):
    weights, source_tokens, output_tokens = briefly.attention("5 Mar 21")
    assert source_tokens == list("5 Mar 21")
    assert output_tokens[-1] == "</s>"
    assert "".join(output_tokens[:-1]) == briefly.translate("5 Mar 21")
    assert weights.shape == (len(output_tokens), len(source_tokens))
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, rtol=1e-5)


def test_save_load_gives_identical_translations(briefly, dates, tmp_path):
    sources = [s for s, _ in dates[1][:20]]
    briefly.save(tmp_path / "model", metadata={"data": "dates"})
    loaded = Seq2Seq.load(tmp_path / "model")
    assert loaded.metadata == {"data": "dates"}
    assert loaded.config == briefly.config
    for beam in (1, 3):
        assert loaded.translate(sources, beam_size=beam) == briefly.translate(sources, beam)
    with pytest.raises(ModelFileError, match="is a 'seq2seq' model, expected 'generator'"):
        from rnnkit.tasks import Generator

        Generator.load(tmp_path / "model")


def test_bad_input_gets_clear_errors(briefly):
    with pytest.raises(
        ValueError, match=r"sources\[0\]: characters not in the model's vocabulary: '€'"
    ):
        briefly.translate("5 € 2021")
    with pytest.raises(ValueError, match=r"sources\[1\]: expected a text with at least one char"):
        briefly.translate(["5 Mar 21", ""])
    with pytest.raises(TypeError, match=r"sources: expected a list of str, got int"):
        briefly.translate(5)
    with pytest.raises(ValueError, match="beam_size: expected an int >= 1, got 0"):
        briefly.translate("5 Mar 21", beam_size=0)
    with pytest.raises(ValueError, match=r"targets: expected one target per source \(2\), got 1"):
        briefly.evaluate(["5 Mar 21", "6 Mar 21"], ["2021-03-05"])
    with pytest.raises(ValueError, match=r"targets: expected one target per source \(2\), got 1"):
        Seq2Seq().fit(["a", "b"], ["a"])
    with pytest.raises(RuntimeError, match=r"Seq2Seq: call fit\(\) or Seq2Seq.load\(\) first"):
        Seq2Seq().translate("5 Mar 21")
    with pytest.raises(ValueError, match="attention: expected one of 'bahdanau'"):
        Seq2Seq(attention="luong")
    with pytest.raises(ValueError, match="hidden_size: expected an even number"):
        Seq2Seq(hidden_size=7)
    with pytest.raises(TypeError, match="pass either config or keyword options"):
        Seq2Seq(Seq2SeqConfig(), cell="gru")


# ---------------------------------------------------------------- data


def test_every_format_writes_its_own_example():
    for example in FORMATS:  # each key is the format applied to Friday 5 March 2021
        assert write_date(dt.date(2021, 3, 5), example) == example


STRPTIME = {"March 5, 2021": "%B %d, %Y", "Mar 5, 2021": "%b %d, %Y", "5 March 2021": "%d %B %Y",
            "05 Mar 2021": "%d %b %Y", "5-Mar-2021": "%d-%b-%Y", "05.03.2021": "%d.%m.%Y",
            "2021/03/05": "%Y/%m/%d", "Friday, March 5, 2021": "%A, %B %d, %Y",
            "2021년 3월 5일": "%Y년 %m월 %d일"}  # fmt: skip


def test_formats_read_back_with_the_standard_library():
    days = [FIRST + dt.timedelta(n) for n in range(0, (LAST - FIRST).days, 97)]
    for form, pattern in STRPTIME.items():
        for day in days:
            assert dt.datetime.strptime(write_date(day, form), pattern).date() == day


def test_every_written_date_reads_one_way_only():
    days = [FIRST + dt.timedelta(n) for n in range((LAST - FIRST).days + 1)]
    meaning: dict[str, dt.date] = {}
    for form in FORMATS:
        for day in days:
            assert meaning.setdefault(write_date(day, form), day) == day
    korean_weekday = write_date(dt.date(1987, 10, 3), "2021년 3월 5일 금요일")
    assert korean_weekday == "1987년 10월 3일 토요일"  # a Saturday


def test_date_pairs_are_seeded_iso_and_on_disjoint_days():
    train_pairs, test_pairs = date_pairs(train=3000, test=500, seed=3)
    assert (len(train_pairs), len(test_pairs)) == (3000, 500)
    assert date_pairs(train=3000, test=500, seed=3) == (train_pairs, test_pairs)
    assert date_pairs(train=3000, test=500, seed=4) != (train_pairs, test_pairs)
    assert not {t for _, t in train_pairs} & {t for _, t in test_pairs}
    for _, target in train_pairs[:100]:
        assert dt.date.fromisoformat(target).isoformat() == target


def test_read_pairs(tmp_path):
    path = tmp_path / "corpus.tsv"
    path.write_text("hello\tbonjour\n\n thank you \tmerci\r\n", encoding="utf-8")
    assert read_pairs(path) == [("hello", "bonjour"), ("thank you", "merci")]
    for text, message in (
        ("hello bonjour\n", r"corpus.tsv, line 1: expected source<TAB>target \(one tab\), got 0"),
        ("a\tb\n\nc\td\te\n", r"corpus.tsv, line 3: expected source<TAB>target \(one tab\), got 2"),
        ("a\t \n", "corpus.tsv, line 1: the target side is empty"),
        ("\tb\n", "corpus.tsv, line 1: the source side is empty"),
        ("\n\n", "holds no source<TAB>target pairs"),
    ):
        path.write_text(text, encoding="utf-8")
        with pytest.raises(ValueError, match=message):
            read_pairs(path)
    with pytest.raises(FileNotFoundError, match="path: no such file"):
        read_pairs(tmp_path / "missing.tsv")


# ---------------------------------------------------------------- figure, CLI, example


def test_plot_attention_writes_a_png_even_for_korean(tmp_path):
    source = list("2021년 3월 5일")
    weights = np.full((3, len(source)), 1 / len(source))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a missing glyph would warn
        path = plot_attention(weights, source, ["2", "0", "</s>"], tmp_path / "a.png")
    assert path.read_bytes().startswith(b"\x89PNG")
    with pytest.raises(
        ValueError, match=r"source_tokens: expected 11 tokens \(weights \(3, 11\)\)"
    ):
        plot_attention(weights, source[:-1], ["2", "0", "</s>"], tmp_path / "b.png")
    with pytest.raises(ValueError, match="weights: expected a non-empty"):
        plot_attention(np.zeros(3), source, [], tmp_path / "b.png")


def test_cli_trains_scores_translates_and_draws(tmp_path):
    runner = CliRunner()
    out = tmp_path / "run"
    common = ["--epochs", "1", "--hidden-size", "16", "--no-progress", "--out", str(out)]
    result = runner.invoke(app, ["seq2seq", "--data", "dates", "--train-size", "300",
                                 "--test-size", "20", "--beam", "2", *common])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "greedy" in result.output and "beam 2" in result.output
    assert (out / "attention.png").read_bytes().startswith(b"\x89PNG")
    table = result.stdout[result.stdout.index("dates: 20 held-out pairs") :].split("\n\n")[0]
    evaluated = runner.invoke(app, ["evaluate", str(out / "model")])  # the recorded test pairs
    assert evaluated.exit_code == 0, evaluated.output
    assert "greedy" in evaluated.stdout and "beam 4" in evaluated.stdout
    greedy_row = next(line for line in table.splitlines() if "greedy" in line)
    assert greedy_row in evaluated.stdout
    model = Seq2Seq.load(out / "model")
    predicted = runner.invoke(app, ["predict", str(out / "model"), "5 Mar 21"])
    assert predicted.stdout == model.translate("5 Mar 21", beam_size=4) + "\n"
    result = runner.invoke(app, ["seq2seq", "--model", str(out / "model"), "--translate",
                                 "5 Mar 21", "--out", str(tmp_path / "again")])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "'5 Mar 21' -> greedy" in result.output
    corpus = tmp_path / "pairs.tsv"
    corpus.write_text("".join(f"{w}\t{w[::-1]}\n" for w in ["abc", "bca", "cab", "acb"] * 10))
    result = runner.invoke(app, ["seq2seq", "--data", str(corpus), *common])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["seq2seq", "--data", str(tmp_path / "missing.tsv")])
    assert result.exit_code == 2
    assert "error: path: no such file" in result.output


def test_example_learns(tmp_path):
    spec = importlib.util.spec_from_file_location("date_normalisation", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    figure = tmp_path / "attention.png"
    result = module.main(["--train", "1500", "--test", "200", "--epochs", "3", "--hidden", "48",
                          "--beam", "2", "--out", str(figure)])  # fmt: skip
    assert figure.read_bytes().startswith(b"\x89PNG")
    assert result["greedy"] > 0.5, result  # a constant answer scores 0 (test days are unseen)


@pytest.mark.slow
def test_quality_bar_dates(tmp_path):
    """The issue's bars: >= 99 % exact match on unseen days, beam never worse than greedy;
    the attention map of a Korean date goes to the test's temporary folder."""
    train_pairs, test_pairs = date_pairs(train=10000, test=2000, seed=0)
    start = time.perf_counter()
    training = TrainConfig(max_epochs=6, batch_size=32, learning_rate=1e-2)
    model = Seq2Seq(hidden_size=64, training=training)
    model.fit(*zip(*train_pairs, strict=True), progress=False)
    sources, targets = zip(*test_pairs, strict=True)
    greedy = model.evaluate(sources, targets)["exact_match"]
    beam = model.evaluate(sources, targets, beam_size=4)["exact_match"]
    print(f"greedy {greedy:.4f} beam {beam:.4f} in {time.perf_counter() - start:.0f} s")
    for source in ("Friday, 5 March 2021", "1987년 10월 3일 토요일"):
        print(f"{source!r} -> {model.translate(source, beam_size=4)!r}")
    print(plot_attention(*model.attention("Friday, 5 March 2021"), tmp_path / "attention.png"))
    assert greedy >= 0.99
    assert beam >= 0.99 and beam >= greedy
