"""Library kernels of ``template_accel``: **vendor swap point** (the ``cnnl``-equivalent).

Core hands a claimed ``matmul`` as a `metajit.ir.kernel.LibraryCall` whose attrs are a
`metajit.toolkit.analysis.MatmulAttrs` (element strides of each operand; stride 0
broadcasts a batch dim). Here the emulated driver's ``mj_emu_matmul`` runs it; a vendor
calls their library's matmul (and claims convolutions in `CLAIMS` with programs for the
roles in `metajit.nn.conv`). Without claims, products run as meta-op kernels.
"""
import ctypes

CLAIMS = (("matmul", ("float32", "float64")),)
DTYPE_CODES = {"float32": 0, "float64": 1}


def declare(library):
    """Set the ctypes signature of the driver's library entry points."""
    function = library.mj_emu_matmul
    function.restype = ctypes.c_char_p
    function.argtypes = ((ctypes.c_int,) + (ctypes.c_void_p,) * 3 + (ctypes.c_int,)
                         + (ctypes.POINTER(ctypes.c_longlong),) * 4 + (ctypes.c_longlong,) * 3)


class MatmulProgram:
    """A ``matmul`` call run by the device library; launched like a compiled kernel."""

    def __init__(self, driver, call):
        attrs = call.attrs
        self.driver, self.call, self.attrs = driver, call, attrs
        self.dtype = DTYPE_CODES[str(call.outputs[0][0])]

        def longs(values):
            return (ctypes.c_longlong * max(len(values), 1))(*values)
        self.batch = longs(attrs.batch)
        self.strides = [longs(s) for s in (attrs.a_strides, attrs.b_strides, attrs.c_strides)]

    def __call__(self, inputs, outputs, parameters):
        attrs = self.attrs
        self.driver.check(self.driver.library.mj_emu_matmul(
            self.dtype, inputs[attrs.a_slot], inputs[attrs.b_slot], outputs[0], len(attrs.batch), self.batch,
            *self.strides, attrs.m, attrs.n, attrs.k), f"library matmul {self.call.inputs} -> {self.call.outputs}")
