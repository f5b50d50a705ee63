"""The ``template_accel`` backend: BANG-style kernels for a scratchpad accelerator, run
here through an emulation layer. It is the worked example a vendor copies.

Parts: `renderer` (Kernel -> ``__mlu_entry__`` code: tiles, DMA, NRAM, intrinsics),
`toolchain` (the ``cncc``-equivalent: compile and cache), `runtime` (the
``cnrt``-equivalent: device memory, copies, launch), `library` (the ``cnnl``-equivalent:
matrix products), `plugin` (the hooks, one `AccelPlugin` object), ``emulation/`` (the
header and driver that make it run on a CPU with g++ and OpenMP). Swap points:
docs/template_accel.md. Registered through the entry point
``template_accel = "metajit.backends.template_accel:plugin"``.
"""
from .plugin import AccelPlugin
from .renderer import AccelRenderer
from .runtime import Driver
from .toolchain import Toolchain

NAME = "template_accel"
plugin = AccelPlugin(NAME, AccelRenderer, Toolchain, Driver)
