"""A text corpus read from disk (rnnkit.data.corpus) against the generator's in-memory path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from rnnkit.data import corpus
from rnnkit.data.corpus import DiskChunks, corpus_vocabulary, encode_corpus
from rnnkit.data.text import Vocabulary
from rnnkit.tasks.generator import Generator, _chunks, _streams, split_text
from rnnkit.train import TrainConfig

# ties in frequency, characters beyond ASCII and one beyond the BMP, Windows line ends
TEXT = "naïve café\r\nüber 東京 🙂 ab ba\r\n" * 40 + "zyx end"


@pytest.fixture
def text_file(tmp_path: Path) -> Path:
    path = tmp_path / "corpus.txt"
    path.write_bytes(TEXT.encode("utf-8"))
    return path


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocks of 37 characters, so that a file spans many of them."""
    monkeypatch.setattr(corpus, "_BLOCK_CHARACTERS", 37)


def test_the_vocabulary_and_ids_are_those_of_the_text_in_memory(
    text_file: Path, tmp_path: Path
) -> None:
    text = text_file.read_text(encoding="utf-8")  # universal newlines, as read_text reads
    expected = Vocabulary.build([list(text)])
    assert corpus_vocabulary(text_file) == (expected, len(text))
    vocabulary, out = encode_corpus(text_file, tmp_path / "ids.npy")
    assert vocabulary == expected
    ids = np.load(out)
    assert ids.dtype == np.uint8 and ids.shape == (len(text), 1)
    assert ids[:, 0].tolist() == expected.encode(list(text))
    assert corpus.read_vocabulary(out) == expected


def test_more_than_254_characters_take_uint16(tmp_path: Path) -> None:
    text = "".join(map(chr, range(0x400, 0x400 + 300))) * 2
    path = tmp_path / "wide.txt"
    path.write_text(text, encoding="utf-8")
    vocabulary, out = encode_corpus(path, tmp_path / "wide.npy")
    ids = np.load(out)
    assert ids.dtype == np.uint16
    assert ids[:, 0].tolist() == vocabulary.encode(list(text))


@pytest.mark.parametrize("streams", [None, 4, 1000])
def test_disk_chunks_equal_the_in_memory_chunks_and_streams(
    text_file: Path, tmp_path: Path, streams: int | None
) -> None:
    vocabulary, out = encode_corpus(text_file, tmp_path / "ids.npy")
    text = text_file.read_text(encoding="utf-8")
    train_text, val_text = split_text(text, 0.25)
    for part, start, stop in ((train_text, 0, len(train_text)), (val_text, len(train_text), None)):
        ids = vocabulary.encode(list(part))
        memory = _chunks(ids, 7) if streams is None else _streams(ids, 7, streams)
        disk = DiskChunks(out, 7, start=start, stop=stop, streams=streams)
        assert len(disk) == len(memory)
        for index in range(len(memory)):
            for read, kept in zip(disk[index], memory[index], strict=True):
                assert read.dtype == kept.dtype
                assert torch.equal(read, kept)


@pytest.mark.parametrize("carry_state", [False, True])
def test_fit_file_trains_as_fit_on_the_text(text_file: Path, carry_state: bool) -> None:
    settings = {"hidden_size": 8, "embedding_size": 4, "sequence_length": 12,
                "carry_state": carry_state}  # fmt: skip
    models = []
    for fitting in ("fit", "fit_file"):
        model = Generator(**settings, training=TrainConfig(max_epochs=2, batch_size=4))
        data = text_file.read_text(encoding="utf-8") if fitting == "fit" else text_file
        getattr(model, fitting)(data, val_fraction=0.2, progress=False)
        models.append(model)
    assert models[1].vocabulary == models[0].vocabulary
    assert models[1].history == models[0].history
    for name, value in models[0].network.state_dict().items():
        assert torch.equal(models[1].network.state_dict()[name], value), name


def test_fit_file_encodes_once_into_the_log_dir(text_file: Path, tmp_path: Path) -> None:
    model = Generator(hidden_size=8, embedding_size=4, sequence_length=12,
                      training=TrainConfig(max_epochs=1, batch_size=4))  # fmt: skip
    model.fit_file(text_file, log_dir=tmp_path / "logs", progress=False)
    encoded = sorted((tmp_path / "logs").glob("corpus-*"))
    assert [path.suffix for path in encoded] == [".json", ".npy"]
    written = encoded[1].stat().st_mtime_ns
    model.fit_file(text_file, log_dir=tmp_path / "logs", progress=False)
    assert encoded[1].stat().st_mtime_ns == written  # the same file: not encoded again


def test_bad_input_is_one_line_naming_it(tmp_path: Path) -> None:
    latin = tmp_path / "latin.txt"
    latin.write_bytes("café".encode("latin-1"))
    with pytest.raises(ValueError, match=r"^path: '.*latin.txt' is not UTF-8 text \("):
        encode_corpus(latin, tmp_path / "ids.npy")
    empty = tmp_path / "empty.txt"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(ValueError, match=r"^path: '.*empty.txt' holds no text$"):
        encode_corpus(empty, tmp_path / "ids.npy")
    floats = tmp_path / "floats.npy"
    np.save(floats, np.zeros((10, 1)))
    with pytest.raises(ValueError, match=r"^path: expected a C-ordered \(T, C\) unsigned int"):
        DiskChunks(floats, 3)
    short = tmp_path / "short.txt"
    short.write_text("abcdefghij" * 3, encoding="utf-8")
    model = Generator(sequence_length=12)
    with pytest.raises(ValueError, match=r"^path: 30 characters are too few"):
        model.fit_file(short, progress=False)
    with pytest.raises(FileNotFoundError, match=r"^path: '.*missing.txt' is not a file$"):
        model.fit_file(tmp_path / "missing.txt")
    with pytest.raises(ValueError, match=r"^val_fraction: expected a float in \(0, 1\), got 0"):
        model.fit_file(short, val_fraction=0)
