"""``conformance run --jobs N``: one selection run as N shard processes (``--shard k/N``),
their results merged in selection order, as if one process had run it. A backend whose
kernels compile slowly (NVRTC, a vendor's compiler) gets through a tier about N times
faster on N cores; every process checks the same seed's examples."""
import ctypes
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading

from metajit.errors import MetajitError

from .runner import Result

PROGRESS = ("PASSED", "FAILED", "XFAILED", "XPASSED", "UNSUPPORTED")
PR_SET_PDEATHSIG = 1  # prctl option: a signal for the process when its parent dies


def run_in_processes(argv, jobs, on_progress):
    """Run ``conformance run`` with arguments ``argv`` (without ``--jobs``, ``--shard``,
    ``--json`` or ``--junit``) as ``jobs`` shard processes. Each progress line they print is
    passed to ``on_progress`` as it comes. Returns (results in selection order, seed or None);
    raises `MetajitError` with a shard's output when one ends without results."""
    with tempfile.TemporaryDirectory(prefix="metajit-conformance-") as folder:
        shards = []
        try:
            for index in range(jobs):
                path = os.path.join(folder, f"shard{index}.json")
                command = [sys.executable, "-m", "metajit.conformance", "run", *argv, "--shard", f"{index}/{jobs}",
                           "--json", path]
                process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                           preexec_fn=_die_with_parent)
                shards.append((process, path, []))
            relays = [threading.Thread(target=_relay, args=(process.stdout, lines, on_progress), daemon=True)
                      for process, _, lines in shards]
            for relay in relays:
                relay.start()
            for relay in relays:
                relay.join()
        except BaseException:  # interrupted: no shard outlives the run
            for process, _, _ in shards:
                process.kill()
            raise
        per_shard, seed = [], None
        for index, (process, path, lines) in enumerate(shards):
            code = process.wait()
            if not os.path.exists(path):
                raise MetajitError(f"shard {index}/{jobs} exited with status {code} and no results:\n"
                                   + "".join(lines[-20:]))
            with open(path) as handle:
                data = json.load(handle)
            seed = data["seed"]
            per_shard.append([Result(**fields) for fields in data["results"]])
    return _interleave(per_shard), seed


def _die_with_parent():
    """In the shard process before it starts (Linux): be killed if the parent dies, so a
    parent stopped by a time limit leaves no shards running."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: the shards run to their end
        pass


def _relay(stream, lines, on_progress):
    for line in stream:
        lines.append(line)
        if line.startswith(PROGRESS):
            on_progress(line.rstrip("\n"))


def _interleave(per_shard):
    """Shard k ran selection[k::N]: put the results back in selection order."""
    merged = []
    for position in range(max((len(r) for r in per_shard), default=0)):
        merged.extend(results[position] for results in per_shard if position < len(results))
    return merged
