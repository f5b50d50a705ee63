"""The README demo trains: its loss falls well below the starting loss."""
from metajit.examples import tiny_regression


def test_demo_loss_decreases(capsys):
    final = tiny_regression.main(steps=60)
    output = capsys.readouterr().out
    first = float(output.splitlines()[0].split()[-1])
    assert final < 0.25 * first
    assert "kernels per step" in output
