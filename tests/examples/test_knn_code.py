"""The jt.code example script runs and agrees with numpy."""
import sys

from metajit.examples import knn_code


def test_knn_example_runs(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["knn_code", "--points", "300", "--k", "5"])
    knn_code.main()
    assert "matches numpy: True" in capsys.readouterr().out
