"""docs/classifying.md: its Python blocks run as written, and what they print holds."""

from __future__ import annotations

from pathlib import Path

import pytest
from docs_code import DOCS, run_python_blocks

from rnnkit.tasks.classifier_blend import WEIGHTS


def test_the_classifying_page_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    namespace = run_python_blocks(DOCS / "classifying.md")
    train, plan = namespace["train"], namespace["plan"]
    assert (len(train), train.num_features) == (270, 12)
    # 270 examples, 9 classes of 30: a stratified 20 % held out, three members
    assert plan.val_fraction == pytest.approx(54 / 270)
    assert plan.options["members"] == 3 and plan.options["stride"] == 1
    # 9 speakers, the largest test class 88 of 370: chance is about 0.24
    assert namespace["report"]["accuracy"] > 0.6
    assert namespace["network_only"]["accuracy"] > 0.6
    # one member holds 54 examples out: the blend's weight is chosen on them
    blend = namespace["model"].blend
    assert blend["validation_examples"] == 54 and blend["weight"] in WEIGHTS
    assert namespace["rocket_accuracy"] > 0.95 and namespace["dtw_accuracy"] > 0.9
