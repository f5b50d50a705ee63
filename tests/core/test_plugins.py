"""Backend registry: listing, selection, broken plugins, entry points, resolved hot path."""
import os
import subprocess
import sys
import textwrap
import types

import numpy as np
import pytest

import metajit as jt
from metajit import plugins
from metajit.backends import reference
from metajit.hookspec import hookimpl


def make_backend(name, **overrides):
    """A plugin object delegating every hook to the reference backend, counting launches."""
    namespace = {}
    for attribute in dir(reference):
        if attribute.startswith("metajit_backend_"):
            namespace[attribute] = getattr(reference, attribute)
    namespace["launches"] = []

    @hookimpl
    def metajit_backend_describe():
        return plugins.BackendDescription(name=name, device_kind="cpu",
                                          dtypes=("float32", "int32", "bool"))

    @hookimpl
    def metajit_backend_launch(program, inputs, outputs, parameters):
        namespace["launches"].append(program)
        reference.metajit_backend_launch(program, inputs, outputs, parameters)

    namespace["metajit_backend_describe"] = metajit_backend_describe
    namespace["metajit_backend_launch"] = metajit_backend_launch
    namespace.update(overrides)
    return types.SimpleNamespace(**namespace)


@pytest.fixture
def registered():
    names = []

    def register(plugin, name):
        plugins.register_backend(plugin, name)
        names.append(name)
        return plugin
    yield register
    for name in names:
        plugins.unregister_backend(name)


def test_reference_is_listed_and_available():
    info = {d.name: d for d in jt.devices()}["reference"]
    assert info.available and info.description.device_kind == "interpreter"
    assert str(info) == "reference: available"


def test_unknown_device_lists_valid_names():
    with pytest.raises(jt.MetajitDeviceError, match="unknown device 'nope'.*reference"):
        jt.set_device("nope")


def test_custom_backend_runs_through_its_hooks(registered):
    backend = registered(make_backend("counting"), "counting")
    jt.set_device("counting")
    result = (jt.array([1.0, 2.0]) * 3).sum().numpy()
    assert result == 9.0
    assert len(backend.launches) == 1  # the multiply fuses into the sum
    assert jt.get_device() == "counting"


def test_device_rejects_dtypes_it_does_not_declare(registered):
    registered(make_backend("narrow"), "narrow")
    jt.set_device("narrow")
    with pytest.raises(jt.MetajitDtypeError, match="does not support float64.*cast"):
        (jt.array(np.array([1.0])) * 2).numpy()


def test_unavailable_backend_reports_reason(registered):
    @hookimpl
    def metajit_backend_unavailable_reason():
        return "no NVIDIA driver found"
    registered(make_backend("fakegpu", metajit_backend_unavailable_reason=
                            metajit_backend_unavailable_reason), "fakegpu")
    info = {d.name: d for d in jt.devices()}["fakegpu"]
    assert not info.available and info.reason == "no NVIDIA driver found"
    with pytest.raises(jt.MetajitDeviceError, match="no NVIDIA driver found"):
        jt.set_device("fakegpu")


def test_plugin_missing_required_hook_is_reported(registered):
    plugin = make_backend("partial")
    del plugin.metajit_backend_free
    registered(plugin, "partial")
    info = {d.name: d for d in jt.devices()}["partial"]
    assert not info.available and "metajit_backend_free" in info.reason
    assert (jt.array([1.0]) + 1).item() == 2.0


def test_misspelled_hook_is_rejected(registered):
    @hookimpl
    def metajit_backend_alocate(nbytes):
        return None
    registered(make_backend("typo", metajit_backend_alocate=metajit_backend_alocate), "typo")
    info = {d.name: d for d in jt.devices()}["typo"]
    assert not info.available and "metajit_backend_alocate" in info.reason


def test_backend_raising_in_describe_is_reported(registered):
    @hookimpl
    def metajit_backend_describe():
        raise RuntimeError("probe crashed")
    registered(make_backend("crashy", metajit_backend_describe=metajit_backend_describe), "crashy")
    info = {d.name: d for d in jt.devices()}["crashy"]
    assert not info.available and "probe crashed" in info.reason


@pytest.mark.parametrize("description,reason", [
    (dict(dtypes=("float32", "float8")), "unknown dtype(s) 'float8'"),
    (dict(library_kernels=(("matmul", ("bfloat17",)),)), "unknown dtype(s) 'bfloat17'"),
    (dict(library_kernels=(42,)), "library claim 42 is neither a name nor (name, dtypes)"),
    (dict(native_ops=("add", "frobnicate")), "unknown native op(s) frobnicate"),
])
def test_backend_with_an_invalid_description_is_unavailable_and_others_keep_working(registered, description,
                                                                                     reason):
    @hookimpl
    def metajit_backend_describe():
        return plugins.BackendDescription(name="wrong", device_kind="cpu", **description)
    registered(make_backend("wrong", metajit_backend_describe=metajit_backend_describe), "wrong")
    infos = {d.name: d for d in jt.devices()}
    assert not infos["wrong"].available and reason in infos["wrong"].reason
    with pytest.raises(jt.MetajitDeviceError, match="device 'wrong' is unavailable: invalid description"):
        jt.set_device("wrong")
    assert infos["reference"].available and (jt.array([1.0, 2.0]) * 2).numpy().tolist() == [2.0, 4.0]


def test_hot_path_does_not_use_pluggy_dispatch(monkeypatch):
    jt.set_device("reference")

    class NoDispatch:
        def __getattr__(self, name):
            raise AssertionError(f"pluggy dispatch of {name} on the hot path")
    monkeypatch.setattr(plugins.registry().manager, "hook", NoDispatch())
    assert (jt.array([1.0, 2.0]).exp() * 2).sum().item() == pytest.approx(2 * (np.e + np.e ** 2))


def _run_python(code, tmp_path, **env):
    environment = {**os.environ, **env}
    environment["PYTHONPATH"] = os.pathsep.join([str(tmp_path), environment.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                           text=True, env=environment, cwd=tmp_path, timeout=120)


def _install_entry_point_plugin(tmp_path, name, module_source):
    (tmp_path / f"{name}_backend.py").write_text(textwrap.dedent(module_source))
    info = tmp_path / f"{name}_backend-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}-backend\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[metajit.backends]\n{name} = {name}_backend\n")


def test_entry_point_plugin_that_fails_to_import_is_reported(tmp_path):
    _install_entry_point_plugin(tmp_path, "broken", "raise ImportError('vendor SDK missing')\n")
    result = _run_python("""
        import metajit as jt
        info = {d.name: d for d in jt.devices()}
        print(info["broken"].available, info["broken"].reason)
        print((jt.array([1.0]) + 1).item())
    """, tmp_path, METAJIT_DEVICE="reference")
    assert result.returncode == 0, result.stderr
    assert "False" in result.stdout and "vendor SDK missing" in result.stdout
    assert "2.0" in result.stdout


def test_entry_point_plugin_is_loaded_and_autoload_can_be_disabled(tmp_path):
    _install_entry_point_plugin(tmp_path, "echo", """
        from metajit.backends.reference import *
        from metajit.backends import reference
        from metajit.hookspec import hookimpl
        from metajit.plugins import BackendDescription
        for _name in dir(reference):
            if _name.startswith("metajit_backend_"):
                globals()[_name] = getattr(reference, _name)

        @hookimpl
        def metajit_backend_describe():
            return BackendDescription(name="echo", device_kind="cpu")
    """)
    code = "import metajit as jt\nprint(sorted(d.name for d in jt.devices()))\n"
    loaded = _run_python(code + "jt.set_device('echo'); print((jt.array([2.0]) * 2).item())\n",
                         tmp_path)
    assert loaded.returncode == 0, loaded.stderr
    assert "'echo'" in loaded.stdout and "4.0" in loaded.stdout
    disabled = _run_python(code, tmp_path, METAJIT_DISABLE_PLUGIN_AUTOLOAD="1")
    assert disabled.returncode == 0, disabled.stderr
    assert "'echo'" not in disabled.stdout and "'reference'" in disabled.stdout


def test_metajit_device_environment_variable(tmp_path):
    result = _run_python("import metajit as jt; print(jt.get_device())", tmp_path,
                         METAJIT_DEVICE="reference")
    assert result.stdout.strip() == "reference"
    bad = _run_python("import metajit as jt; jt.zeros(1).numpy()", tmp_path, METAJIT_DEVICE="bogus")
    assert bad.returncode != 0 and "unknown device 'bogus'" in bad.stderr


def test_library_claims_are_dtype_aware():
    from metajit.ir import dtypes
    from metajit.plugins import claims
    table = ("conv2d", ("matmul", ("float16", "float32")))
    assert claims(table, "conv2d", dtypes.float64) and claims(table, "conv2d")
    assert claims(table, "matmul", dtypes.float16) and not claims(table, "matmul", dtypes.float64)
    assert not claims(table, "conv2d_bias", dtypes.float32)


def test_an_unclaimed_dtype_runs_the_composition(rng):
    """The cpu backend claims matmul for float32/float64 only: a float16 product is a fused
    kernel, a float32 one a library call; both match numpy."""
    if jt.get_device() != "cpu":
        pytest.skip("about the cpu backend's claims")
    a, b = rng.standard_normal((6, 5)), rng.standard_normal((5, 4))
    for dtype, library, tolerance in (("float16", False, 1e-2), ("float32", True, 1e-5)):
        x, y = jt.array(a.astype(dtype)), jt.array(b.astype(dtype))
        with jt.debug.record_kernels() as launched:
            product = (x @ y).numpy()
        assert any(getattr(k.kernel, "name", None) == "matmul" for k in launched) == library
        np.testing.assert_allclose(product, a.astype(dtype) @ b.astype(dtype), rtol=tolerance, atol=tolerance)


def test_threads_starting_at_once_share_one_registry_and_device_handle(tmp_path):
    """Two handles for one device would each move shared values (a model's weights) to
    themselves at every call, freeing the copy the other thread is reading."""
    result = _run_python("""
        import threading
        import numpy as np
        import metajit as jt
        from metajit import plugins
        start, seen = threading.Barrier(6), []
        weights = jt.array(np.arange(64, dtype=np.float32).reshape(8, 8))

        def first_use():
            start.wait()
            seen.append((id(plugins.registry()), id(plugins.current()), (weights @ weights).numpy().sum()))
        threads = [threading.Thread(target=first_use) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        print(len({s[0] for s in seen}), len({s[1] for s in seen}), len({float(s[2]) for s in seen}))
    """, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["1", "1", "1"]
