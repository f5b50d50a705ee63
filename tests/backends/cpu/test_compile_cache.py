"""Disk cache robustness: warm reuse across processes, corrupt entries, concurrent
compiles, missing compiler, compiler failures."""
import glob
import os
import subprocess
import sys
import textwrap

import pytest

PROGRAM = """
import numpy as np
import metajit as jt
x = jt.array(np.arange(12, dtype=np.float32).reshape(3, 4))
y = ((x * 1.5).sin() + x.T.reshape(3, 4)).sum(1)
print(np.round(y.numpy(), 4).tolist())
"""


def expected_output():
    import numpy as np
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    return str(np.round((np.sin(x * 1.5) + x.T.reshape(3, 4)).sum(1), 4).tolist())


def run(cache, code=PROGRAM, **env):
    environment = {**os.environ, "METAJIT_CACHE_DIR": str(cache), "METAJIT_DEVICE": "cpu", **env}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, env=environment, timeout=300)


def compiled_units(cache):
    return sorted(glob.glob(os.path.join(cache, "cpu", "src", "*.cpp")))


def test_second_process_reuses_the_disk_cache(tmp_path):
    first = run(tmp_path)
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == expected_output()
    units = compiled_units(tmp_path)
    assert units
    second = run(tmp_path)
    assert second.returncode == 0, second.stderr
    assert second.stdout == first.stdout
    assert compiled_units(tmp_path) == units


@pytest.mark.parametrize("damage", ["truncate", "garbage", "delete_checksum"])
def test_corrupt_entry_is_rebuilt_with_a_warning(tmp_path, damage):
    assert run(tmp_path).returncode == 0
    for library in glob.glob(os.path.join(tmp_path, "cpu", "*.so")):
        if damage == "truncate":
            with open(library, "r+b") as handle:
                handle.truncate(100)
        elif damage == "garbage":
            with open(library, "wb") as handle:
                handle.write(b"not an ELF file" * 10)
        else:
            os.unlink(library[:-3] + ".sha256")
    result = run(tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == expected_output()
    assert "corrupt or incomplete; rebuilding" in result.stderr


def test_four_processes_compiling_the_same_kernels_all_succeed(tmp_path):
    environment = {**os.environ, "METAJIT_CACHE_DIR": str(tmp_path), "METAJIT_DEVICE": "cpu"}
    processes = [subprocess.Popen([sys.executable, "-c", PROGRAM], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, env=environment)
                 for _ in range(4)]
    outputs = [p.communicate(timeout=300) for p in processes]
    for process, (stdout, stderr) in zip(processes, outputs):
        assert process.returncode == 0, stderr
        assert stdout.strip() == expected_output()
        assert "corrupt" not in stderr


def test_missing_compiler_gives_one_line_naming_the_fix(tmp_path):
    result = run(tmp_path, CXX="/nonexistent/g++")
    assert result.returncode != 0
    last_line = result.stderr.strip().splitlines()[-1]
    assert "MetajitDeviceError" in last_line
    assert "install g++" in last_line and "CXX" in last_line
    listing = run(tmp_path, code="import metajit as jt\nprint([str(d) for d in jt.devices()])",
                  CXX="/nonexistent/g++", METAJIT_DEVICE="reference")
    assert "cpu: unavailable: C++ compiler '/nonexistent/g++' not found" in listing.stdout


def test_compiler_failure_names_source_and_first_errors(tmp_path):
    fake = tmp_path / "fake-cxx"
    fake.write_text("#!/bin/sh\n"
                    "if [ \"$1\" = --version ]; then echo 'fake 1.0'; exit 0; fi\n"
                    "echo 'kernel.cpp:3:1: error: simulated failure' >&2; exit 1\n")
    fake.chmod(0o755)
    result = run(tmp_path / "cache", CXX=str(fake))
    assert result.returncode != 0
    assert "MetajitCompileError" in result.stderr
    assert "error: simulated failure" in result.stderr
    assert os.path.join("cpu", "src") in result.stderr and ".cpp" in result.stderr
    assert "(at <string>:6)" in result.stderr  # the user line that realised the Var


def test_a_library_that_verifies_but_does_not_load_is_rebuilt_once(tmp_path):
    """An entry whose checksum matches but which is not a loadable library (copied from
    another machine, damaged before its checksum was written) is rebuilt, not fatal."""
    assert run(tmp_path).returncode == 0
    import hashlib
    for library in glob.glob(os.path.join(tmp_path, "cpu", "*.so")):
        garbage = b"\x7fELF but not really" * 20
        with open(library, "wb") as handle:
            handle.write(garbage)
        with open(library[:-3] + ".sha256", "w") as handle:
            handle.write(hashlib.sha256(garbage).hexdigest())
    result = run(tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == expected_output()
    assert run(tmp_path).stdout.strip() == expected_output()


@pytest.mark.parametrize("obstacle", ["file_in_the_way", "lock_is_a_directory"])
def test_an_unusable_cache_directory_warns_once_and_still_computes(tmp_path, obstacle):
    if obstacle == "file_in_the_way":
        (tmp_path / "cache").write_text("not a directory")
    else:
        (tmp_path / "cache" / "cpu" / ".lock").mkdir(parents=True)
    result = run(tmp_path / "cache", TMPDIR=str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == expected_output()
    assert result.stderr.count("is unusable") == 1 and "METAJIT_CACHE_DIR" in result.stderr
    assert "Traceback" not in result.stderr
    listing = run(tmp_path / "cache", code="import metajit as jt\nprint([str(d) for d in jt.devices()])",
                  TMPDIR=str(tmp_path))
    assert "cpu: available (kernel cache" in listing.stdout and "unusable" in listing.stdout
    assert "METAJIT_CACHE_DIR" in listing.stdout
