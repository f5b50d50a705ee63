"""Introspection: which kernels a realisation ran, with their generated source, and a
kernel profiler (``jt.profile_scope``).

Example::

    with jt.debug.record_kernels() as launched:
        (a * b + c).relu().sync()
    print(len(launched), launched[0].kernel)
    print(launched[0].source)        # the backend's generated code

    with jt.profile_scope() as report:     # every kernel launched inside, timed
        model(x).sync()
    print(report.rows[0])                  # the slowest kernel: launches, total seconds...
"""
import collections
import contextlib
import dataclasses
import sys
import time


@dataclasses.dataclass(frozen=True)
class LaunchedKernel:
    """One kernel launch: the backend-neutral kernel, the device, the generated source
    (None when a library kernel ran instead), and its wall time in seconds when a
    `profile_scope` timed it (None otherwise)."""

    kernel: object
    device: str
    source: str = None
    seconds: float = None


_recorders = []
_timers = []


def is_recording():
    """Whether a `record_kernels` block is active (the executor then calls `record`)."""
    return bool(_recorders)


def is_timing():
    """Whether a `profile_scope` is active: the executor then launches kernels one by one,
    synchronising after each, and passes their wall times to `record`."""
    return bool(_timers)


def record(handle, kernel, seconds=None):
    """Called by the executor for each launch while a recorder is active."""
    if _recorders:
        source = handle.sources.get(kernel)
        entry = LaunchedKernel(kernel, handle.name, source.text if source else None, seconds)
        for recorder in _recorders:
            recorder.append(entry)


@contextlib.contextmanager
def record_kernels():
    """Collect every kernel launched inside the ``with`` block into the yielded list."""
    launched = []
    _recorders.append(launched)
    try:
        yield launched
    finally:
        _recorders.remove(launched)


ProfileRow = collections.namedtuple("ProfileRow", ["name", "device", "count", "total", "average", "minimum",
                                                   "maximum", "share"])


def _kernel_name(kernel):
    """A one-line name: the library call's name, or the kernel's first line (domain and types)."""
    name = getattr(kernel, "name", None)
    if isinstance(name, str):
        return f"library {name}"
    return str(kernel).splitlines()[0]


class ProfileReport:
    """What a `profile_scope` measured: ``rows`` (one `ProfileRow` per distinct kernel and
    device, slowest total first; times in seconds), ``launches`` (the `LaunchedKernel`
    entries in order), ``wall_seconds`` (the whole block) and `table()`."""

    def __init__(self, launches):
        self.launches = launches
        self.wall_seconds = 0.0
        self.rows = []

    def finish(self, wall_seconds):
        """Summarise the launches recorded so far (called when the scope ends)."""
        self.wall_seconds = wall_seconds
        grouped = {}
        for launch in self.launches:
            grouped.setdefault((launch.kernel, launch.device), []).append(launch.seconds or 0.0)
        kernel_seconds = sum(sum(times) for times in grouped.values()) or 1.0
        self.rows = sorted((ProfileRow(_kernel_name(kernel), device, len(times), sum(times), sum(times) / len(times),
                                       min(times), max(times), sum(times) / kernel_seconds)
                            for (kernel, device), times in grouped.items()), key=lambda row: -row.total)

    def table(self, limit=20):
        """The report as text, Jittor-like: one line per kernel, slowest first (``limit`` rows)."""
        header = f"{'Name':<60} {'Device':<10} {'Count':>6} {'TotalTime':>11} {'%':>6} {'AvgTime':>10} " \
                 f"{'MinTime':>10} {'MaxTime':>10}"
        lines = [f"Profile result ({len(self.launches)} kernel launches, {self.wall_seconds * 1e3:.3f} ms wall), "
                 "sorted by TotalTime:", header]
        for row in self.rows[:limit]:
            name = row.name if len(row.name) <= 60 else row.name[:57] + "..."
            lines.append(f"{name:<60} {row.device:<10} {row.count:>6} {row.total * 1e3:>9.3f}ms "
                         f"{row.share * 100:>5.1f}% {row.average * 1e3:>8.3f}ms {row.minimum * 1e3:>8.3f}ms "
                         f"{row.maximum * 1e3:>8.3f}ms")
        if len(self.rows) > limit:
            lines.append(f"... {len(self.rows) - limit} more kernels")
        return "\n".join(lines)

    def __str__(self):
        return self.table()


class profile_scope:
    """Jittor's ``jt.profile_scope``: time every kernel launched inside the ``with`` block.

    While it is active each kernel is launched on its own and waited for, so the block
    runs slower than usual and the times are per kernel. On exit the report table is
    printed (to stderr; ``print_report=False`` keeps quiet), and the yielded
    `ProfileReport` holds the rows. The ``warmup`` and ``rerun`` arguments of Jittor's are
    accepted and ignored (metajit compiles before it launches, outside the times).

    Example::

        with jt.profile_scope() as report:
            loss = model(x).sum(); loss.sync()
        slowest = report.rows[0]
    """

    def __init__(self, warmup=0, rerun=0, print_report=True, **unused_jittor_options):
        self.print_report = print_report
        self.report = None

    def __enter__(self):
        self._launches = []
        _recorders.append(self._launches)
        _timers.append(self)
        self._started = time.perf_counter()
        self.report = ProfileReport(self._launches)
        return self.report

    def __exit__(self, *exc):
        wall = time.perf_counter() - self._started
        _timers.remove(self)
        _recorders.remove(self._launches)
        self.report.finish(wall)
        if self.print_report and exc[0] is None:
            print(self.report.table(), file=sys.stderr)
        return False
