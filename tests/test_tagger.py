"""SequenceTagger (one tag per step) and the word-boundary task built on it."""

from __future__ import annotations

import random
import time
from collections import Counter

import pytest
import torch
import typer
from hypothesis import given
from hypothesis import strategies as st
from sklearn.metrics import accuracy_score, precision_recall_fscore_support
from typer.testing import CliRunner

from rnnkit.cli import app
from rnnkit.commands import tag
from rnnkit.data import load_text
from rnnkit.tasks.tagger import (
    IGNORE,
    SequenceTagger,
    SpaceRestorer,
    TaggerConfig,
    TaggerNetwork,
    WindowBaseline,
    _collate,
    _tag_loss,
    respace,
    split_lines,
    tag_scores,
    unspace,
)
from rnnkit.train import ModelFileError, TrainConfig

TINY = {"hidden_size": 16, "embedding_size": 8, "min_count": 1}


def quick(epochs: int = 12) -> TrainConfig:
    return TrainConfig(max_epochs=epochs, patience=epochs, batch_size=32, learning_rate=0.02)


def random_strings(count: int, alphabet: str, seed: int, low: int = 4, high: int = 16) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choices(alphabet, k=rng.randint(low, high))) for _ in range(count)]


def next_is_a(text: str) -> list[int]:
    """Tag 1 where the *next* character is "a": only a reader of the future can know."""
    return [int(text[i + 1 : i + 2] == "a") for i in range(len(text))]


@pytest.fixture(scope="module")
def next_a_data() -> dict[str, list]:
    strings = random_strings(480, "abcd", seed=1)
    tags = [next_is_a(s) for s in strings]
    return {"train": (strings[:320], tags[:320]), "val": (strings[320:400], tags[320:400]),
            "test": (strings[400:], tags[400:])}  # fmt: skip


@pytest.fixture(scope="module")
def bi_tagger(next_a_data: dict[str, list]) -> SequenceTagger:
    tagger = SequenceTagger(cell="gru", bidirectional=True, training=quick(), **TINY)
    tagger.fit(*next_a_data["train"], validation=next_a_data["val"], progress=False)
    return tagger


# ---------------------------------------------------------------------- unspace / respace


def test_unspace_tags_the_character_before_each_space() -> None:
    assert unspace("to be or not") == ("tobeornot", [0, 1, 0, 1, 0, 1, 0, 0, 0])
    assert unspace("  a\tb \n") == ("ab", [1, 0])
    assert unspace("") == ("", [])
    assert respace("tobeornot", [0, 1, 0, 1, 0, 1, 0, 0, 0]) == "to be or not"


@given(st.text(alphabet="ab가 \t\n.", max_size=30))
def test_respace_inverts_unspace_up_to_whitespace_normalisation(text: str) -> None:
    normal = " ".join(text.split())
    assert respace(*unspace(text)) == normal
    assert unspace(normal) == unspace(text)


@given(st.lists(st.tuples(st.sampled_from("ab가'."), st.booleans()), max_size=30))
def test_unspace_inverts_respace(pairs: list[tuple[str, bool]]) -> None:
    chars, tags = "".join(c for c, _ in pairs), [int(t) for _, t in pairs]
    expected = [*tags[:-1], 0] if tags else []  # nothing follows the last character
    assert unspace(respace(chars, tags)) == (chars, expected)


def test_respace_rejects_tags_of_another_length() -> None:
    with pytest.raises(ValueError, match=r"tags: expected 3 tags \(one per character\), got 2"):
        respace("abc", [0, 1])


def test_split_lines_is_chronological_and_drops_repeats_of_training_lines() -> None:
    lines = [f"line {i}" for i in range(40)] + ["line 3", "l ine3", "new one"] * 3
    train_lines, val, test, dropped = split_lines("\n\n".join(lines), 0.2, 0.2)
    assert train_lines == lines[: len(train_lines)]
    seen = {unspace(line)[0] for line in train_lines}
    assert all(unspace(line)[0] not in seen for line in val + test)
    assert len(train_lines) + len(val) + len(test) + dropped == len(lines)
    order = [lines.index(line) for line in val + test if lines.count(line) == 1]
    assert order == sorted(order) and min(order) >= len(train_lines)
    with pytest.raises(ValueError, match="too few"):
        split_lines("one\ntwo", 0.1, 0.1)


# ---------------------------------------------------------------------- metrics, baseline


def test_tag_scores_match_sklearn() -> None:
    rng = random.Random(0)
    truth = [[rng.choice([0, 1, 2]) for _ in range(rng.randint(0, 9))] for _ in range(40)]
    predicted = [[t if rng.random() < 0.6 else rng.choice([0, 1, 2]) for t in s] for s in truth]
    flat_truth = [t for s in truth for t in s]
    flat_pred = [t for s in predicted for t in s]
    scores = tag_scores(truth, predicted, positive=1)
    p, r, f, _ = precision_recall_fscore_support(flat_truth, flat_pred, labels=[1], zero_division=0)
    assert scores["precision"] == pytest.approx(p[0])
    assert scores["recall"] == pytest.approx(r[0])
    assert scores["f1"] == pytest.approx(f[0])
    assert scores["accuracy"] == pytest.approx(accuracy_score(flat_truth, flat_pred))
    macro = precision_recall_fscore_support(flat_truth, flat_pred, average="macro", zero_division=0)
    assert scores["macro_f1"] == pytest.approx(macro[2])
    assert tag_scores(truth, predicted, positive=None)["f1"] == pytest.approx(macro[2])
    assert tag_scores([[0, 0]], [[0, 0]], positive=1)["f1"] == 0.0  # no positives: 0, no error
    with pytest.raises(ValueError, match="predicted: expected 2 > 0 tags"):
        tag_scores([[0, 1]], [[0]], positive=1)


def test_bigram_baseline_is_the_majority_rule_counted_by_hand() -> None:
    strings = random_strings(200, "abc", seed=2)
    rng = random.Random(3)
    tags = [[int(rng.random() < 0.3 + 0.4 * (c == "a")) for c in s] for s in strings]
    counts: dict[tuple[str, str], Counter] = {}
    for s, t in zip(strings, tags, strict=True):
        for i, tag_ in enumerate(t):
            counts.setdefault((s[i], s[i + 1 : i + 2]), Counter())[tag_] += 1
    baseline = WindowBaseline(left=1, right=1).fit(strings, tags)
    for (a, b), found in counts.items():
        expected = int(found[1] > found[0])  # P(1 | a, b) > 0.5; ties go to the majority 0
        assert baseline.predict([a + b])[0][0] == expected, (a, b, found)
    # An unseen pair backs off to the character alone: "d" is unknown, so "a" decides.
    alone = Counter(
        t
        for s, ts in zip(strings, tags, strict=True)
        for c, t in zip(s, ts, strict=True)
        if c == "a"
    )
    assert baseline.predict(["ad"])[0][0] == int(alone[1] > alone[0])
    with pytest.raises(RuntimeError, match="fit"):
        WindowBaseline().predict(["ab"])


# ---------------------------------------------------------------------- learning


def test_tagger_learns_a_rule_that_needs_the_next_token(
    bi_tagger: SequenceTagger, next_a_data: dict[str, list]
) -> None:
    scores = bi_tagger.evaluate(*next_a_data["test"])
    positives = Counter(t for s in next_a_data["test"][1] for t in s)
    share = positives[1] / sum(positives.values())
    assert scores["f1"] >= 0.95, scores
    assert scores["f1"] > 2 * share / (1 + share) + 0.3  # F1 of "always 1", the best blind guess


def test_bidirectional_beats_unidirectional_where_the_future_decides(
    bi_tagger: SequenceTagger, next_a_data: dict[str, list]
) -> None:
    uni = SequenceTagger(cell="gru", bidirectional=False, training=quick(6), **TINY)
    uni.fit(*next_a_data["train"], validation=next_a_data["val"], progress=False)
    test = next_a_data["test"]
    positives = Counter(t for s in test[1] for t in s)
    share = positives[1] / sum(positives.values())
    # The tokens are independent, so what a left-to-right reader sees says nothing about the
    # tag: no such predictor beats the F1 of always answering 1, 2p / (1 + p).
    assert uni.evaluate(*test)["f1"] <= 2 * share / (1 + share) + 0.02
    assert bi_tagger.evaluate(*test)["f1"] >= 0.95


def test_tagger_learns_string_tags_with_macro_f1() -> None:
    strings = random_strings(300, "aeibcdk.,", seed=4)
    kinds = [["V" if c in "aei" else "P" if c in ".," else "C" for c in s] for s in strings]
    tagger = SequenceTagger(cell="lstm", bidirectional=False, positive=None, training=quick(8),
                            **TINY)  # fmt: skip
    tagger.fit(strings[:240], kinds[:240], progress=False)
    assert tagger.tags == ("C", "P", "V")
    scores = tagger.evaluate(strings[240:], kinds[240:])
    majority = tag_scores(kinds[240:], [["C"] * len(s) for s in strings[240:]], positive=None)
    assert scores["macro_f1"] >= 0.95 > majority["macro_f1"] + 0.4
    assert scores["f1"] == scores["macro_f1"]  # positive=None: macro averages
    with pytest.raises(ValueError, match="0/1 tags"):
        SpaceRestorer(tagger)


# ---------------------------------------------------------------------- padding, files


def test_padding_changes_neither_outputs_nor_loss() -> None:
    torch.manual_seed(0)
    for cell in ("lstm", "gru", "jordan"):
        config = TaggerConfig(cell=cell, num_layers=2, dropout=0.3, **TINY)
        network = TaggerNetwork(9, 3, config).eval()
        rows = [[2, 3, 4, 5, 6, 7], [5, 4], [8]]
        items = [(r, [len(r) % 3] * len(r)) for r in rows]
        ids, lengths, tags = _collate(items)
        noisy = ids.clone()
        noisy[ids == 0] = 7  # garbage where the padding was: must be ignored too
        with torch.no_grad():
            batched = network(noisy, lengths)  # (N, L, T)
            for row, r in enumerate(rows):
                alone = network(torch.tensor([r]), torch.tensor([len(r)]))[0]
                torch.testing.assert_close(batched[row, : len(r)], alone, rtol=1e-5, atol=1e-6)
            loss = _tag_loss(network, (ids, lengths, tags))
            per_token = [
                torch.nn.functional.cross_entropy(
                    network(torch.tensor([r]), torch.tensor([len(r)]))[0], torch.tensor(t),
                    reduction="sum",
                )
                for r, t in items
            ]  # fmt: skip
        assert (tags == IGNORE).sum() == (ids == 0).sum()
        torch.testing.assert_close(loss, sum(per_token) / sum(map(len, rows)))


def test_predictions_do_not_depend_on_the_batch(bi_tagger: SequenceTagger) -> None:
    strings = ["abcab", "a", "dddddddddddddddddddddddaad", "", "cab"]
    together = bi_tagger.predict_logits(strings)
    for s, logits in zip(strings, together, strict=True):
        torch.testing.assert_close(logits, bi_tagger.predict_logits([s])[0], rtol=1e-5, atol=1e-6)
    assert bi_tagger.predict(["", "ab"]) == [[], bi_tagger.predict(["ab"])[0]]


def test_save_load_gives_identical_predictions(bi_tagger: SequenceTagger, tmp_path) -> None:
    strings = random_strings(30, "abcdz", seed=5)  # "z" was never seen: <unk>
    bi_tagger.save(tmp_path / "model", metadata={"note": "test"})
    loaded = SequenceTagger.load(tmp_path / "model")
    assert loaded.config == bi_tagger.config and loaded.tags == bi_tagger.tags
    assert loaded.vocabulary == bi_tagger.vocabulary and loaded.metadata == {"note": "test"}
    assert loaded.history == bi_tagger.history
    for a, b in zip(loaded.predict_logits(strings), bi_tagger.predict_logits(strings), strict=True):
        assert torch.equal(a, b)
    with pytest.raises(ModelFileError, match="not an rnnkit model"):
        SequenceTagger.load(tmp_path / "missing")


def test_space_restorer_respaces_each_line_from_the_tagger(bi_tagger: SequenceTagger) -> None:
    restorer = SpaceRestorer(bi_tagger)  # tags 0/1: "a space follows" = "next is a"
    lines = ["cabbad", "ddab", "", "a"]
    expected = [respace(c, t) for c, t in zip(lines, bi_tagger.predict(lines), strict=True)]
    assert restorer.restore("\n".join(lines)) == "\n".join(expected)
    assert restorer.restore("ca bb\tad\nd dab\n\na") == "\n".join(expected)  # spaces dropped
    assert restorer.tagger.config.hidden_size == TINY["hidden_size"]
    assert SpaceRestorer().tagger.config.num_layers == 2  # RESTORER_OPTIONS
    with pytest.raises(TypeError, match="either a tagger or keyword options"):
        SpaceRestorer(bi_tagger, hidden_size=3)
    with pytest.raises(TypeError, match="text: expected a str"):
        restorer.restore(["ab"])


def test_same_seed_same_model(next_a_data: dict[str, list]) -> None:
    strings, tags = next_a_data["train"]
    logits = []
    for _ in range(2):
        tagger = SequenceTagger(cell="lstm", training=quick(2), **TINY)
        tagger.fit(strings[:100], tags[:100], progress=False)
        logits.append(tagger.predict_logits(strings[100:120]))
    assert all(torch.equal(a, b) for a, b in zip(*logits, strict=True))


# ---------------------------------------------------------------------- bad input


def test_unknown_tokens_are_read_as_unk(bi_tagger: SequenceTagger) -> None:
    assert bi_tagger.vocabulary.encode("zé") == [bi_tagger.vocabulary.unk_index] * 2
    torch.testing.assert_close(
        bi_tagger.predict_logits([list("abzc")])[0],
        bi_tagger.predict_logits([["a", "b", "<unk>", "c"]])[0],
    )


@pytest.mark.parametrize(
    ("tokens", "tags", "error", "message"),
    [
        (["abc", "ab"], [[0, 0, 1], [0]], ValueError, r"\[1\]: expected 2 tags \(one per token"),
        (["abc", ""], [[0, 0, 1], []], ValueError, r"token_sequences\[1\]: empty sequence"),
        ([], [], ValueError, "expected a non-empty list"),
        (["ab"], [[0, 1], [1]], ValueError, "one tag sequence per token sequence, got 1 and 2"),
        ("abc", [[0, 0, 1]], TypeError, "wrap one sequence in a list"),
        ([["a", 3]], [[0, 1]], TypeError, r"\[0\]: expected a str or a sequence of str"),
        (["ab"], [[0, 0.5]], TypeError, "expected int or str tags, got 0.5"),
    ],
)  # fmt: skip
def test_fit_rejects_bad_sequences(tokens, tags, error, message) -> None:
    with pytest.raises(error, match=message):
        SequenceTagger(**TINY).fit(tokens, tags, progress=False)


def test_other_errors_are_clear(bi_tagger: SequenceTagger) -> None:
    with pytest.raises(RuntimeError, match=r"call fit\(\) or SequenceTagger.load\(\) first"):
        SequenceTagger().predict(["ab"])
    with pytest.raises(TypeError, match="wrap one sequence in a list"):
        bi_tagger.predict("abc")
    with pytest.raises(ValueError, match="cell: expected one of"):
        SequenceTagger(cell="transformer")
    with pytest.raises(ValueError, match="dropout: expected a float in"):
        TaggerConfig(dropout=1.0)
    TaggerNetwork(5, 2, TaggerConfig(dropout=0.5, num_layers=1))  # no warning: one layer
    with pytest.raises(TypeError, match="either config or keyword options"):
        SequenceTagger(TaggerConfig(), hidden_size=3)
    with pytest.raises(ValueError, match=r"validation: tags \[7\] are not in the training tags"):
        SequenceTagger(**TINY).fit(["ab"], [[0, 1]], validation=(["ab"], [[7, 1]]))
    with pytest.raises(TypeError, match=r"use str\.splitlines"):
        SpaceRestorer(**TINY).fit("to be\nor not")


# ---------------------------------------------------------------------- command line

WORDS = ["the", "king", "and", "queen", "of", "a", "fair", "land", "sat", "in", "hall", "my"]


@pytest.fixture
def cli() -> typer.Typer:
    app = typer.Typer()
    app.command("tag")(tag.command)
    app.command("other")(lambda: None)  # two commands, so "tag" stays a subcommand
    return app


def test_cli_trains_compares_and_restores(cli: typer.Typer, tmp_path) -> None:
    rng = random.Random(6)
    text = "\n".join(" ".join(rng.choices(WORDS, k=rng.randint(2, 7))) for _ in range(160))
    (tmp_path / "words.txt").write_text(text, encoding="utf-8")
    runner = CliRunner()
    out = tmp_path / "run"
    result = runner.invoke(cli, [
        "tag", "--data", str(tmp_path / "words.txt"), "--epochs", "2", "--hidden-size", "8",
        "--num-layers", "1", "--cell", "gru", "--show", "2", "--no-progress", "--out", str(out),
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "bigram rule" in result.output and "rnnkit gru" in result.output
    assert "F1" in result.output and "Model:" in result.output
    restorer = SpaceRestorer.load(out / "model")
    assert restorer.tagger.metadata["source"]["data"] == str(tmp_path / "words.txt")
    restored = runner.invoke(cli, ["tag", "--model", str(out / "model"), "--text", "thekingsat"])
    assert restored.exit_code == 0, restored.output
    assert restored.stdout.strip() == restorer.restore("thekingsat")
    predicted = runner.invoke(app, ["predict", str(out / "model"), "thekingsat"])
    assert predicted.exit_code == 0 and predicted.stdout.strip() == restorer.restore("thekingsat")
    words = str(tmp_path / "words.txt")
    evaluated = runner.invoke(app, ["evaluate", str(out / "model"), "--data", words])
    assert evaluated.exit_code == 0, evaluated.output
    f1 = f"{restorer.tagger.metadata['test_scores']['f1']:.4f}"
    assert "rnnkit gru" in evaluated.stdout and f1 in evaluated.stdout


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--data", "no/such/file.txt"], "is neither a bundled text"),
        (["--text", "tobe"], "--text needs --model"),
        ([], "give --data"),
        (["--text", "tobe", "--model", "no/such/dir"], "is not an rnnkit model"),
    ],
)
def test_cli_errors_are_one_line(cli: typer.Typer, arguments: list[str], message: str) -> None:
    result = CliRunner().invoke(cli, ["tag", *arguments])
    assert result.exit_code == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output


# ---------------------------------------------------------------------- quality (slow)


def _quality_run(name: str, **options) -> tuple[dict[str, float], dict[str, float], float]:
    """Train a restorer on the first 80% of the lines; scores on the last 10% for it and
    for the bigram rule, and the training time."""
    train_lines, val_lines, test_lines, _ = split_lines(load_text(name))
    restorer = SpaceRestorer(**options)
    started = time.perf_counter()
    restorer.fit(train_lines, val_lines, progress=False)
    seconds = time.perf_counter() - started
    chars, tags = zip(*map(unspace, test_lines), strict=True)
    bigram = WindowBaseline(1, 1).fit(*zip(*map(unspace, train_lines), strict=True))
    baseline = tag_scores(tags, bigram.predict(chars), positive=1)
    scores = restorer.evaluate(test_lines)
    print(
        f"\n{name}: F1 {scores['f1']:.4f} (precision {scores['precision']:.4f}, recall "
        f"{scores['recall']:.4f}) in {seconds:.0f} s; bigram rule F1 {baseline['f1']:.4f}"
    )
    return scores, baseline, seconds


@pytest.mark.slow
def test_shakespeare_word_boundaries_f1_at_least_095() -> None:
    scores, baseline, _ = _quality_run("shakespeare")  # RESTORER_OPTIONS, RESTORER_TRAINING
    assert scores["f1"] >= 0.95
    assert scores["f1"] > baseline["f1"] + 0.2


@pytest.mark.slow
def test_korean_word_boundaries_beat_the_bigram_rule() -> None:
    # ~11,000 training characters: small batches and more epochs; no F1 bar (see the report).
    training = TrainConfig(max_epochs=40, batch_size=16, learning_rate=3e-3)
    scores, baseline, _ = _quality_run("korean", training=training)
    assert scores["f1"] > baseline["f1"]
