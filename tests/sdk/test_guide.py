"""The guide's renderer example is real: it renders, compiles with OpenMP and passes the
conformance smoke tier inside the serial template."""
import os
import re
import types

import metajit as jt
from metajit.conformance import runner
from metajit.hookspec import hookimpl
from metajit.plugins import BackendDescription
from metajit.sdk.templates import serial_backend
from metajit.toolkit import codegen, host_compiler

GUIDE = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                     "sdk", "README.md")


def guide_example(marker):
    with open(GUIDE) as handle:
        blocks = re.findall(r"```python\n(.*?)```", handle.read(), re.DOTALL)
    (block,) = [b for b in blocks if marker in b]
    namespace = {}
    exec(compile(block, GUIDE, "exec"), namespace)
    return namespace


def test_the_openmp_renderer_of_the_guide_works(tmp_path):
    renderer = guide_example("class OmpRenderer")["OmpRenderer"]
    hooks = {name: getattr(serial_backend, name) for name in dir(serial_backend) if name.startswith("metajit_backend_")}

    @hookimpl
    def metajit_backend_describe():
        return BackendDescription(name="guideomp", device_kind="cpu")

    @hookimpl
    def metajit_backend_codegen(kernels):
        return serial_backend.render(kernels, renderer)

    hooks.update(metajit_backend_describe=metajit_backend_describe, metajit_backend_codegen=metajit_backend_codegen)
    jt.plugins.register_backend(types.SimpleNamespace(**hooks), "guideomp")
    previous = jt.get_device()
    try:
        results, _ = runner.run("guideomp", "smoke", None, 20261202, None, [], None)
        failed = [f"{r.name}: {r.message}" for r in results if r.status == "failed"]
        assert not failed, "\n".join(failed)
        jt.set_device("guideomp")
        a = jt.array([[1.0, 2.0], [3.0, 4.0]])
        with jt.debug.record_kernels() as launched:
            (a * 2 + 1).sync()
        source = launched[0].source
        assert "#pragma omp parallel for num_threads(num_threads)" in source
        unit = tmp_path / "unit.cpp"
        unit.write_text(codegen.prelude() + source)
        toolchain = host_compiler.HostToolchain(serial_backend.FLAGS + ("-fopenmp",))
        assert toolchain.build_shared_library(str(unit), str(tmp_path / "unit.so")) is None
    finally:
        jt.set_device(previous)
        jt.plugins.unregister_backend("guideomp")
