"""The ``conformance`` command: listing, exit status, reports, unsupported dtypes, xfail files."""
import json
import subprocess
import sys
import xml.etree.ElementTree as ElementTree

import pytest

from metajit import plugins
from metajit.conformance import cli

from .mutants import make_mutant


@pytest.fixture(params=["reference"], autouse=True)
def device(request):
    """These tests pick their backends themselves."""
    yield request.param


def run_cli(*argv):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(list(argv))
    return exit_info.value.code


@pytest.fixture
def mutant():
    plugins.register_backend(make_mutant("mutant_cli", binary_overrides={
        "maximum": __import__("numpy").fmax}), "mutant_cli")
    yield "mutant_cli"
    plugins.unregister_backend("mutant_cli")


def test_list_and_backends(capsys):
    assert run_cli("list") == 0
    listing = capsys.readouterr().out
    for family in ("elementwise:", "reduce:", "index:", "fusion:", "grad:", "memory:", "errors:"):
        assert family in listing
    assert "[smoke]" in listing
    assert run_cli("backends") == 0
    assert "reference: available" in capsys.readouterr().out


def test_smoke_run_passes_and_writes_reports(tmp_path, capsys):
    junit, report = tmp_path / "junit.xml", tmp_path / "results.json"
    assert run_cli("run", "--backend", "reference", "--tier", "smoke", "--seed", "3",
                   "--junit", str(junit), "--json", str(report)) == 0
    output = capsys.readouterr().out
    assert "family" in output and "elementwise" in output and "seed 3" in output
    suites = ElementTree.parse(junit).getroot().findall("testsuite")
    assert {s.get("name").split(".")[-1] for s in suites} >= {"elementwise", "grad", "memory"}
    data = json.loads(report.read_text())
    assert data["seed"] == 3 and all(r["status"] == "passed" for r in data["results"])


def test_failure_exits_one_with_runnable_reproduction(mutant, capsys):
    assert run_cli("run", "--backend", mutant, "-k", "elementwise.maximum[float32]", "--seed", "1") == 1
    output = capsys.readouterr().out
    assert "FAILED elementwise.maximum[float32]" in output
    snippet = output.split("reproduce with:\n", 1)[1].split("\n\nbackend ", 1)[0]
    code = "\n".join(line[4:] for line in snippet.splitlines())
    exec(compile(code, "<snippet>", "exec"), {})
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith(f"{mutant} jt.Var") and printed[1].startswith("reference jt.Var")


def test_xfail_file_turns_expected_failures_into_xfailed(mutant, tmp_path, capsys):
    xfail = tmp_path / "xfail.txt"
    xfail.write_text("# known: fmax ignores nan\nelementwise.maximum[float32]\n")
    assert run_cli("run", "--backend", mutant, "-k", "elementwise.maximum[float32]", "--seed", "1",
                   "--xfail", str(xfail), "--json", str(tmp_path / "r.json")) == 0
    (result,) = json.loads((tmp_path / "r.json").read_text())["results"]
    assert result["status"] == "xfailed"


def test_undeclared_dtypes_are_unsupported_not_passed(tmp_path):
    narrow = make_mutant("mutant_narrow")
    describe = narrow.metajit_backend_describe

    @__import__("metajit").hookspec.hookimpl
    def metajit_backend_describe():
        return describe().__class__(name="mutant_narrow", device_kind="cpu", dtypes=("float32", "bool"))
    narrow.metajit_backend_describe = metajit_backend_describe
    plugins.register_backend(narrow, "mutant_narrow")
    try:
        assert run_cli("run", "--backend", "mutant_narrow", "--tier", "smoke", "--seed", "2",
                       "--json", str(tmp_path / "r.json")) == 0
    finally:
        plugins.unregister_backend("mutant_narrow")
    results = json.loads((tmp_path / "r.json").read_text())["results"]
    statuses = {r["name"]: r["status"] for r in results}
    assert statuses["elementwise.add[int32]"] == "unsupported"
    assert statuses["elementwise.add[float32]"] == "passed"


def test_unknown_backend_exits_two(capsys):
    assert run_cli("run", "--backend", "nope") == 2
    assert "nope" in capsys.readouterr().err


def test_module_entry_point_runs():
    result = subprocess.run([sys.executable, "-m", "metajit.conformance", "list", "-k", "errors"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "errors.shape_mismatch" in result.stdout


def test_shards_split_the_selection_without_overlap(capsys):
    from metajit.conformance import runner
    whole = [p.name for p in runner.select("smoke", "elementwise")]
    shards = [[p.name for p in runner.select("smoke", "elementwise", (k, 3))] for k in range(3)]
    assert sorted(sum(shards, [])) == sorted(whole) and all(shards)
    assert not set(shards[0]) & set(shards[1])
    assert run_cli("run", "--backend", "reference", "--tier", "smoke", "-k", "elementwise", "--shard", "1/3",
                   "--seed", "2") == 0
    assert f"{len(shards[1])} passed" in capsys.readouterr().out
    for bad in ("3/3", "1", "a/b"):
        with pytest.raises(SystemExit):
            cli.main(["run", "--backend", "reference", "--shard", bad])
        assert "shard" in capsys.readouterr().err


def test_jobs_run_shards_in_processes_and_merge_one_report(tmp_path, capsys):
    from metajit.conformance import runner
    report = tmp_path / "results.json"
    assert run_cli("run", "--backend", "reference", "--tier", "smoke", "-k", "elementwise", "--jobs", "2",
                   "--seed", "5", "--json", str(report)) == 0
    data = json.loads(report.read_text())
    assert [r["name"] for r in data["results"]] == [p.name for p in runner.select("smoke", "elementwise")]
    assert data["seed"] == 5 and all(r["status"] == "passed" for r in data["results"])
    assert "seed 5" in capsys.readouterr().out
    assert run_cli("run", "--backend", "mutant_fmax", "--plugin", "tests.conformance.mutant_plugin:PLUGIN",
                   "-k", "elementwise.maximum[float32],elementwise.add[float32]", "--jobs", "2", "--seed", "1") == 1
    output = capsys.readouterr().out
    assert "FAILED      elementwise.maximum[float32]" in output and "1 passed, 1 failed" in output
    assert run_cli("run", "--backend", "reference", "--jobs", "2", "--shard", "0/2") == 2
    assert "not both" in capsys.readouterr().err
