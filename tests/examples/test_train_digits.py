"""The README's main demo learns the digits (two epochs already exceed 95% test accuracy)."""
import pytest

pytest.importorskip("sklearn")

from metajit.examples import train_digits  # noqa: E402


def test_two_epochs_learn_the_digits(capsys, device):
    if device == "reference":
        pytest.skip("the numpy interpreter takes 40 s for the demo; the compiled devices run it")
    accuracy = train_digits.main(epochs=2)
    assert accuracy > 0.95
    output = capsys.readouterr().out
    assert "epoch 2/2" in output and "test accuracy" in output
