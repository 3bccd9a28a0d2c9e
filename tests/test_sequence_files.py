"""Readers of labelled sequence files: .ts, UCR .tsv/.csv, long-format CSV and .npz, checked
against hand-written files, against sktime's independent .ts reader where it installs, and
for one-line errors naming the file, line and column."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from rnnkit.data import dataset_path
from rnnkit.data.sequences import is_sequence_file, read_sequences

FILES = Path(str(dataset_path("sentiment"))).parent

TS = """# a comment
@problemName Tiny
@timeStamps false
@univariate false
@dimensions 2
@equalLength false
@classLabel true walk run
@data
1,2,3:10,20,30:walk
4.5,5:40,50:run
"""


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_ts_multivariate_variable_length(tmp_path: Path) -> None:
    data = read_sequences(write(tmp_path / "tiny.ts", TS))
    assert data.labels == ["walk", "run"]
    np.testing.assert_array_equal(data.sequences[0], [[1, 10], [2, 20], [3, 30]])
    np.testing.assert_array_equal(data.sequences[1], [[4.5, 40], [5, 50]])
    assert data.num_features == 2 and data.lengths.tolist() == [3, 2]
    assert data.header["problemname"] == "Tiny" and data.header["equallength"] == "false"
    assert data.classes == ("run", "walk")


def test_gzipped_ts_reads_as_the_plain_file(tmp_path: Path) -> None:
    plain = read_sequences(write(tmp_path / "a.ts", TS))
    path = tmp_path / "a.ts.gz"
    path.write_bytes(gzip.compress(TS.encode()))
    packed = read_sequences(path)
    assert packed.labels == plain.labels
    for a, b in zip(packed.sequences, plain.sequences, strict=True):
        np.testing.assert_array_equal(a, b)


def test_integer_labels_become_ints(tmp_path: Path) -> None:
    text = "@classLabel true 1 2\n@data\n1,2:1\n3,4:2\n"
    assert read_sequences(write(tmp_path / "a.ts", text)).labels == [1, 2]


def test_ucr_tsv_label_first_and_nan_padding_dropped(tmp_path: Path) -> None:
    # UCR 2018 pads shorter series with NaN at the end; labels may be written 1.0
    path = write(tmp_path / "X_TRAIN.tsv", "1.0\t0.5\t1.5\t2.5\n-1\t3\t4\tNaN\n")
    data = read_sequences(path)
    assert data.labels == [1, -1]
    np.testing.assert_array_equal(data.sequences[0][:, 0], [0.5, 1.5, 2.5])
    np.testing.assert_array_equal(data.sequences[1][:, 0], [3, 4])


def test_ucr_csv_without_header(tmp_path: Path) -> None:
    data = read_sequences(write(tmp_path / "x.csv", "a,1,2\nb,3,4\n"))
    assert data.labels == ["a", "b"] and data.sequences[1][:, 0].tolist() == [3, 4]


def test_long_format_csv_groups_sorts_by_time_and_names_channels(tmp_path: Path) -> None:
    text = "id,time,ax,ay,label\ns1,2,3,30,up\ns2,1,9,90,down\ns1,1,1,10,up\ns1,3,5,50,up\n"
    data = read_sequences(write(tmp_path / "long.csv", text))
    assert data.labels == ["up", "down"] and data.channels == ("ax", "ay")
    np.testing.assert_array_equal(data.sequences[0], [[1, 10], [3, 30], [5, 50]])
    np.testing.assert_array_equal(data.sequences[1], [[9, 90]])


def test_npz_with_lengths(tmp_path: Path) -> None:
    x = np.arange(2 * 3 * 2, dtype=np.float32).reshape(2, 3, 2)
    np.savez(tmp_path / "d.npz", X=x, y=np.array(["a", "b"]), lengths=np.array([3, 1]))
    data = read_sequences(tmp_path / "d.npz")
    assert data.labels == ["a", "b"] and data.lengths.tolist() == [3, 1]
    np.testing.assert_array_equal(data.sequences[1], x[1, :1])


def test_univariate_npz_gets_one_channel(tmp_path: Path) -> None:
    np.savez(tmp_path / "d.npz", X=np.ones((2, 4)), y=np.array([0, 1]))
    data = read_sequences(tmp_path / "d.npz")
    assert data.num_features == 1 and data.labels == [0, 1]


@pytest.mark.parametrize(
    ("fill", "expected"),
    [("ffill", [1, 1, 3]), ("interpolate", [1, 2, 3]), ("zero", [1, 0, 3])],
)
def test_missing_values_are_filled_on_request(tmp_path: Path, fill: str, expected: list) -> None:
    path = write(tmp_path / "a.ts", "@data\n1,?,3:x\n4,5,6:y\n")
    data = read_sequences(path, fill=fill)
    assert data.sequences[0][:, 0].tolist() == expected


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("a.ts", "@data\n1,2:3,4:x\n1,2:y\n",
         r"a\.ts line 3: expected 2 channels, got 1 \(mixed channel counts\)"),
        ("a.ts", "@data\n1,2:x\n1,?:y\n",
         r"a\.ts line 3: missing value at step 2 of channel 1; pass fill= \(--fill\)"),
        ("a.ts", "@data\n1,2:x\n1,abc:y\n",
         r"a\.ts line 3, column 3, channel 1 value 2: expected a number, got 'abc'"),
        ("a.ts", "@data\n1,2:3:x\n", r"line 2: expected channels of one length"),
        ("a.ts", "@classLabel true a b\n@data\n1,2:c\n", "label 'c', which its @classLabel"),
        ("a.ts", "1,2:x\n", r"line 1: expected an @ header line or @data"),
        ("a.tsv", "1\t0.5\tx1\n", r"a\.tsv line 1, column 7, value 2: expected a number"),
        ("long.csv", "id,time,v,label\na,1,2,x\na,2,oops,x\n",
         r"long\.csv line 3, column 'v': expected a number, got 'oops'"),
        ("long.csv", "id,time,v,label\na,1,2,x\na,2,3,y\n",
         r"line 3, column 'label': example 'a' has label 'y' here and 'x' before"),
        ("long.csv", "id,time,v,label\na,1,2\n", r"line 2: expected 4 cells as in the header"),
        ("long.csv", "name,v,label\na,1,x\n", r"id_column: 'id' is not a column of long\.csv"),
        ("a.json", "{}", r"expected a \.ts, \.tsv, \.csv or \.npz file"),
    ],
)  # fmt: skip
def test_bad_files_are_one_line_errors(tmp_path: Path, name: str, text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        read_sequences(write(tmp_path / name, text))
    assert "\n" not in str(caught.value)


def test_npz_errors_and_no_pickle(tmp_path: Path) -> None:
    np.savez(tmp_path / "a.npz", data=np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"a\.npz has no array 'X'; expected X \(N, L, F\)"):
        read_sequences(tmp_path / "a.npz")
    np.savez(tmp_path / "b.npz", X=np.array([[1, 2]], dtype=object), y=np.array([1]))
    with pytest.raises(ValueError, match=r"b\.npz is not a readable \.npz file"):
        read_sequences(tmp_path / "b.npz")  # object arrays need pickle: refused
    with pytest.raises(FileNotFoundError, match="no such file"):
        read_sequences(tmp_path / "none.ts")


def test_is_sequence_file_tells_text_csvs_apart(tmp_path: Path) -> None:
    assert is_sequence_file(write(tmp_path / "t.csv", "text,label\nhi,1\n")) is False
    assert is_sequence_file(write(tmp_path / "w.csv", "1,2,3\n")) is True
    assert is_sequence_file(tmp_path / "x.ts.gz") is True


@pytest.mark.parametrize("name", ["GunPoint", "JapaneseVowels"])
def test_bundled_ts_files_agree_with_sktime(tmp_path: Path, name: str) -> None:
    """sktime's own .ts reader, on the same (unzipped) file, gives the same numbers."""
    loader = pytest.importorskip("sktime.datasets").load_from_tsfile_to_dataframe
    plain = tmp_path / f"{name}_TRAIN.ts"
    plain.write_bytes(gzip.decompress((FILES / f"{name}_TRAIN.ts.gz").read_bytes()))
    ours = read_sequences(plain)
    frame, labels = loader(str(plain))
    assert [str(v) for v in ours.labels] == labels.tolist()
    assert len(ours) == len(frame) and ours.num_features == frame.shape[1]
    for i in range(len(frame)):
        theirs = np.stack([frame.iloc[i, j].to_numpy() for j in range(frame.shape[1])], axis=1)
        np.testing.assert_array_equal(ours.sequences[i], theirs)


def test_bundled_sets_have_their_published_sizes() -> None:
    """Sizes from the UCR/UEA archive's descriptions (Dau et al. 2019; Bagnall et al. 2018)."""
    gun = (
        read_sequences(FILES / "GunPoint_TRAIN.ts.gz"),
        read_sequences(FILES / "GunPoint_TEST.ts.gz"),
    )
    assert [len(d) for d in gun] == [50, 150] and set(gun[0].lengths) == {150}
    vowels = read_sequences(FILES / "JapaneseVowels_TRAIN.ts.gz")
    assert len(vowels) == 270 and vowels.num_features == 12
    assert vowels.lengths.min() == 7 and vowels.lengths.max() == 26
    assert [vowels.labels.count(c) for c in vowels.classes] == [30] * 9  # 30 per speaker
