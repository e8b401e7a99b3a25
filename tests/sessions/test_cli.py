"""``emovox sessions build|score`` on the synthetic corpus: output lines and bad input."""

from __future__ import annotations

import json

from emovox.cli import main


def test_build_a_corpus_then_refuse_a_model_that_does_not_know_its_labels(synthetic_corpus,
                                                                          tmp_path, capsys):
    out = tmp_path / "set"
    assert main(["-q", "sessions", "build", "--format", "csv", "--path", str(synthetic_corpus),
                 "--speakers", "s1", "s2", "--utterances", "4", "--conditions", "clean",
                 "--out", str(out)]) == 0
    line = json.loads(capsys.readouterr().out)
    assert line["speakers"] == ["s1", "s2"] and line["per_condition"] == 4
    assert line["conditions"] == ["clean"] and (out / "sessions.json").exists()
    assert main(["-q", "sessions", "score", str(out), "--out", str(tmp_path / "scored")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "labels ['high', 'low']" in err[0]  # the bundled model's are others


def test_bad_input_is_one_line_and_exit_2(synthetic_corpus, tmp_path, capsys):
    for argv in (["--path", str(synthetic_corpus)],  # no --format
                 ["--format", "csv", "--path", str(synthetic_corpus), "--utterances", "1"],
                 ["--format", "csv", "--path", str(synthetic_corpus), "--min-pause-s", "5"]):
        assert main(["-q", "sessions", "build", "--out", str(tmp_path / "x"), *argv]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("emovox: error: "), err
    assert main(["-q", "sessions", "score", str(tmp_path / "nothing"), "--out",
                 str(tmp_path / "y")]) == 2
    assert "sessions.json: not found" in capsys.readouterr().err
