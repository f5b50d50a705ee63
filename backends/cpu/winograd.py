"""3x3 stride-1 convolutions as Winograd F(4x4, 3x3) (`winograd.cpp`), on OpenBLAS.

oneDNN 3.2 has no Winograd convolution for AVX2 machines; its direct convolution already
runs near the CPU's peak, so the way to be faster is to do fewer multiplications: F(4x4, 3x3)
does 36 per 4x4 output tile and channel pair instead of 144. The cost is transforming
the input and output tiles (memory-bound) and the weights, so it pays for wide layers
with enough tiles; `program_for` picks it for those and keeps oneDNN's convolution for
the rest. Results differ from a direct convolution by rounding only: 5e-6 to 8e-6 of
the output's scale in float32 on 64 to 128 channels (a direct convolution's, torch's
included, is about 3e-7), which float32 training amplifies where small batches meet
1x1 feature maps; ``METAJIT_WINOGRAD=0`` gives the direct convolution's accuracy.

Forward convolutions (``conv2d``, ``conv2d_bias``, ``conv2d_bias_relu(6)``) and the input gradient
(``conv2d_backward_data``, a 3x3 convolution with the flipped, transposed weights) run
here. The transformed weights are kept between calls while the weight buffer holds the
same contents (`metajit.toolkit.allocator.KeptCopies`), so inference transforms each
weight once; when they cannot be kept (training) and the layer has few tiles, the weight
transform would cost more than it saves, and the call runs on oneDNN instead.
"""
import os
import struct
import threading

import numpy as np

from metajit.flags import flags
from metajit.toolkit.allocator import KeptCopies

from . import blas
from .allocator import aligned
from .convolution import FORWARD, adds_residual, epilogue, is_unit_stride_float32

_DRIVER_PATH = os.path.join(os.path.dirname(__file__), "winograd.cpp")
_PACK_PARAMETERS = struct.Struct("=18q")  # see winograd.cpp for the order
_LANES = 8                # tiles transformed together (winograd.cpp's LANES)
TILE_BLOCK = 64           # tiles per block when each thread runs whole blocks in its cache
MIN_CHANNELS = 32         # fewer input channels: products too thin to beat a direct convolution
MIN_OUTPUT_CHANNELS = 16
MIN_TILES = 16            # fewer 4x4 output tiles: the transformed weights outweigh the products
MIN_TILES_UNKEPT = 64     # ... when the weights are transformed at every call (training)


def _geometry(call):
    """(N, C, H, W, K, OH, OW, pad top, pad left, flipped) of the convolution ``call``
    computes, or None when it is not a 3x3 stride-1 undilated ungrouped float32 one."""
    padding, groups = call.attrs[1], call.attrs[3]
    if groups != 1 or not is_unit_stride_float32(call, FORWARD + ("conv2d_backward_data",)):
        return None
    (_, first), (_, weights) = call.inputs[:2]
    _, output = call.outputs[0]
    if tuple(weights[2:]) != (3, 3) or not all(0 <= p <= 2 for p in padding):
        return None
    if call.name == "conv2d_backward_data":  # the output gradient convolved with flipped w^T
        return first + output[1:2] + output[2:] + (2 - padding[0], 2 - padding[1], 1)
    return first + output[1:2] + output[2:] + (padding[0], padding[1], 0)


def _padded_tiles(n, oh, ow):
    tiles = n * -(-oh // 4) * -(-ow // 4)
    return -(-tiles // _LANES) * _LANES


def program_for(call, workspace, direct):
    """A `WinogradProgram` for the library call ``call`` when Winograd pays for its shape,
    else ``direct()`` (the program that runs it otherwise)."""
    geometry = _geometry(call)
    if geometry is None or not blas.available() or os.environ.get("METAJIT_WINOGRAD") == "0":
        return direct()
    n, c, _, _, k, oh, ow = geometry[:7]
    if c < MIN_CHANNELS or k < MIN_OUTPUT_CHANNELS or _padded_tiles(n, oh, ow) < MIN_TILES:
        return direct()
    return WinogradProgram(call, geometry, workspace, direct)


class WinogradProgram:
    """Runs one 3x3 stride-1 convolution shape as Winograd F(4x4, 3x3); scratch (the
    transformed tiles, and the transformed weights unless kept) comes from the thread's
    shared ``workspace``."""

    def __init__(self, call, geometry, workspace, direct):
        self.call, self.workspace, self.make_direct = call, workspace, direct
        self.direct = None
        n, c, h, w, k, oh, ow, pad_top, pad_left, flipped = geometry
        self.geometry = geometry
        self.padded_tiles = _padded_tiles(n, oh, ow)
        self.weight_bytes = aligned(36 * k * c * 4)
        self.lock = threading.Lock()  # the kept weights are looked up and filled by one call at a time
        self.weights = KeptCopies(self.weight_bytes, workspace.allocator, guard=self.lock)
        self.has_bias, self.activation = epilogue(call)
        self.sgemm = blas.routines()[np.dtype(np.float32)][0]
        self.tile_layouts = {}

    def _tile_layout(self, threads):
        """(tiles per block, bytes of transformed tiles) on ``threads`` threads; the block
        is 0 when the whole transformed input is one phase: blocks pay when every thread
        gets at least two (their transforms then stay in cache)."""
        layout = self.tile_layouts.get(threads)
        if layout is None:
            _, c, _, _, k = self.geometry[:5]
            block = TILE_BLOCK if self.padded_tiles >= 2 * threads * TILE_BLOCK else 0
            tiles = threads * block if block else self.padded_tiles
            layout = self.tile_layouts[threads] = (block, aligned(36 * (c + k) * tiles * 4))
        return layout

    def __call__(self, inputs, outputs, parameters):
        with self.lock:
            self._run(inputs, outputs, parameters)

    def _run(self, inputs, outputs, parameters):
        from metajit.backends import cpu
        kept = self.weights.lookup(inputs[1])
        if kept is None and self.padded_tiles < MIN_TILES_UNKEPT:
            if self.direct is None:
                self.direct = self.make_direct()
            self.direct(inputs, outputs, parameters)
            return
        block, tile_bytes = self._tile_layout(flags.num_threads)
        scratch = self.workspace.reserve(tile_bytes + (self.weight_bytes if kept is None else 0)).address
        weights, transform = (scratch + tile_bytes, 1) if kept is None else (kept[0].address, int(not kept[1]))
        try:
            cpu.compiler().run_driver(_DRIVER_PATH, inputs, outputs,
                                      self._parameters(scratch, weights, transform, block))
        except BaseException:
            if kept is not None and not kept[1]:  # the copy was to be derived by this run
                self.weights.forget(inputs[1])
            raise

    def native_calls(self, inputs, outputs):
        """This call as a launch for the cpu backend's C launcher when the thread's
        workspace holds its scratch: with the transformed weights kept and current (pinned
        until the sequence has run), or transformed into the scratch where `lookup` would
        keep no copy (training: new weights at every step), or, for few tiles, as the direct
        convolution's launch. None otherwise: the call makes the kept copy or grows the
        workspace, under its lock."""
        from metajit.backends import cpu
        block, tile_bytes = self._tile_layout(flags.num_threads)
        with self.lock:
            weights = self.weights.pin(inputs[1])
            if weights is None:
                if self.padded_tiles < MIN_TILES_UNKEPT:  # `_run` would run the direct convolution
                    if self.direct is None:
                        self.direct = self.make_direct()
                    direct_calls = getattr(self.direct, "native_calls", None)
                    calls = direct_calls(inputs, outputs) if direct_calls is not None else None
                    return calls if calls is not None and self.weights.derives_in_scratch(inputs[1]) else None
                scratch = self.workspace.reserve(tile_bytes + self.weight_bytes, grow=False)
                # nothing may refuse the launch once derives_in_scratch has noted the sighting
                if scratch is None or not self.weights.derives_in_scratch(inputs[1]):
                    return None
                return [(cpu.compiler().driver_address(_DRIVER_PATH), inputs, outputs,
                         self._parameters(scratch.address, scratch.address + tile_bytes, 1, block))]
        scratch = self.workspace.reserve(tile_bytes, grow=False)
        if scratch is None:
            return None
        return [(cpu.compiler().driver_address(_DRIVER_PATH), inputs, outputs,
                 self._parameters(scratch.address, weights.address, 0, block))]

    def _parameters(self, scratch, weights, transform, block):
        """The driver's packed parameters (see winograd.cpp): tiles at ``scratch``, the
        transformed weights at ``weights`` (computed there first when ``transform``)."""
        n, c, h, w, k, oh, ow, pad_top, pad_left, flipped = self.geometry
        return _PACK_PARAMETERS.pack(self.sgemm, n, c, h, w, k, oh, ow, pad_top, pad_left, int(self.has_bias),
                                     scratch, weights, transform, block, flipped, self.activation,
                                     int(adds_residual(self.call)))
