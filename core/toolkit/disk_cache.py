"""The on-disk cache of compiled artefacts (shared libraries, cubins, vendor binaries).

Guarantees every backend gets by using it (and the tests in ``tests/toolkit`` prove):

* entries ``<key><suffix>`` are installed by writing a temporary file and renaming it,
  so a reader never sees a half-written artefact;
* a ``<key>.sha256`` checksum is written last and verified on every lookup; a corrupt,
  truncated or unverified entry is deleted with a warning and reported missing, so it is
  rebuilt (a lookup checks a failing entry again under `DiskCache.locked` before
  deleting it: builds install under that lock, so an entry they are publishing is not
  taken for corrupt);
* `DiskCache.locked` is an exclusive lock on ``<root>/.lock`` shared by every process
  using the directory (``mpirun -np 4``): compile under it and look up again after
  taking it, and each artefact is built once;
* an unusable directory (read-only, a file in the way, a ``.lock`` that is not a file)
  falls back to a per-user directory under the system's temporary directory (or, if that
  fails too, a fresh one) with one warning naming ``METAJIT_CACHE_DIR``, instead of
  failing with a raw ``OSError``;
* temporary files left by a process killed mid-compile are removed when a later process
  opens the cache (those older than `STALE_TEMPORARY_SECONDS`);
* `DiskCache.remove` drops an entry whose artefact verifies but does not load (a library
  built for another machine), so the backend can rebuild it once.

The root is ``METAJIT_CACHE_DIR`` (default ``~/.cache/metajit``) joined with the
backend's name. Example::

    cache = DiskCache(cache_root("mydevice"), suffix=".bin")
    path = cache.lookup(key)
    if path is None:
        with cache.locked():
            path = cache.lookup(key) or cache.install_bytes(key, toolchain.build(source))
"""
import contextlib
import fcntl
import glob
import hashlib
import os
import shutil
import tempfile
import threading
import time
import warnings

STALE_TEMPORARY_SECONDS = 15 * 60


def cache_root(backend_name):
    """The cache directory of ``backend_name`` (``METAJIT_CACHE_DIR``/name)."""
    base = os.environ.get("METAJIT_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "metajit")
    return os.path.join(base, backend_name)


def file_digest(path):
    """The sha256 hex digest of the file at ``path``."""
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def atomic_write(path, content):
    """Write ``content`` (str or bytes) to ``path`` through a temporary file and a rename."""
    descriptor, temporary = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".tmp")
    with os.fdopen(descriptor, "wb" if isinstance(content, bytes) else "w") as handle:
        handle.write(content)
    os.replace(temporary, path)


def _check_usable(root):
    """Create ``root`` (with ``src``) and prove it writable and lockable; raises OSError."""
    os.makedirs(os.path.join(root, "src"), exist_ok=True)
    probe = tempfile.NamedTemporaryFile(dir=root, prefix=".probe")
    probe.close()
    with open(os.path.join(root, ".lock"), "a"):
        pass


def _unusable_reason(root):
    """Why ``root`` cannot hold the cache, or None when it can."""
    try:
        _check_usable(root)
        return None
    except OSError as error:
        return error.strerror or str(error)


def _per_user_fallback(root):
    return os.path.join(tempfile.gettempdir(), f"metajit-cache-{os.getuid()}",
                        os.path.basename(root.rstrip(os.sep)))


def fallback_notice(root):
    """A one-line notice when ``root`` is unusable and the cache will live elsewhere (for
    ``jt.devices()``), else an empty string."""
    reason = _unusable_reason(root)
    if reason is None:
        return ""
    return (f"kernel cache {root} is unusable ({reason}); kernels are cached in {_per_user_fallback(root)}: "
            "set METAJIT_CACHE_DIR to a writable directory")


def _usable_directory(root):
    """``root`` when usable, else a per-user temporary cache (or a fresh one), with a warning."""
    reason = _unusable_reason(root)
    if reason is None:
        return root
    fallback = _per_user_fallback(root)
    try:
        _check_usable(fallback)
    except OSError:
        fallback = tempfile.mkdtemp(prefix="metajit-cache-")
        _check_usable(fallback)
    warnings.warn(f"metajit: kernel cache directory {root} is unusable ({reason}); using {fallback} "
                  "instead: set METAJIT_CACHE_DIR to a writable directory to choose where compiled "
                  "kernels are kept", RuntimeWarning, stacklevel=3)
    return fallback


def _remove_stale_temporaries(root):
    """Delete ``*.tmp`` files a killed process left behind (old enough that no compile
    still writes them)."""
    cutoff = time.time() - STALE_TEMPORARY_SECONDS
    for path in glob.glob(os.path.join(root, "*.tmp")) + glob.glob(os.path.join(root, "src", "*.tmp")):
        with contextlib.suppress(OSError):
            if os.path.getmtime(path) < cutoff:
                os.unlink(path)


class DiskCache:
    """Verified artefacts ``<root>/<key><suffix>``; sources for inspection in ``<root>/src``."""

    def __init__(self, root, suffix=".so"):
        self.root = _usable_directory(root)
        self.suffix = suffix
        self.source_directory = os.path.join(self.root, "src")
        self._holding = threading.local()  # how deep this thread is in `locked` blocks
        _remove_stale_temporaries(self.root)

    def path(self, key):
        """Where the artefact of ``key`` lives (whether or not it exists)."""
        return os.path.join(self.root, key + self.suffix)

    def _checksum_path(self, key):
        return os.path.join(self.root, key + ".sha256")

    def lookup(self, key):
        """The verified artefact path of ``key``, or None (a corrupt entry is removed with a
        warning). An entry that does not verify is checked again under `locked`, since an
        install (which holds the lock) may be publishing it right now."""
        artefact = self.path(key)
        if not os.path.exists(artefact):
            return None
        if self._verifies(key, artefact):
            return artefact
        with self.locked():
            if not os.path.exists(artefact):
                return None
            if self._verifies(key, artefact):
                return artefact
            warnings.warn(f"metajit: cache entry {artefact} is corrupt or incomplete; rebuilding it",
                          RuntimeWarning, stacklevel=2)
            self.remove(key)
            return None

    def _verifies(self, key, artefact):
        """Whether ``artefact`` matches the checksum recorded for ``key``."""
        try:
            with open(self._checksum_path(key)) as handle:
                return handle.read().strip() == file_digest(artefact)
        except OSError:
            return False

    def remove(self, key):
        """Delete the entry of ``key`` (artefact and checksum), if any."""
        for path in (self.path(key), self._checksum_path(key)):
            with contextlib.suppress(OSError):
                os.unlink(path)

    def install(self, key, built_path, digest=None):
        """Publish the file ``built_path`` under ``key`` (hard link or copy to a temporary
        name, rename, checksum last); returns the entry's path. ``built_path`` stays."""
        target = self.path(key)
        temporary = f"{target}.{os.getpid()}.{threading.get_ident()}.tmp"
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        try:
            os.link(built_path, temporary)
        except OSError:
            shutil.copyfile(built_path, temporary)
        os.replace(temporary, target)
        atomic_write(self._checksum_path(key), digest or file_digest(target))
        return target

    def install_bytes(self, key, data):
        """Publish the artefact bytes ``data`` under ``key``; returns the entry's path."""
        target = self.path(key)
        atomic_write(target, data)
        atomic_write(self._checksum_path(key), hashlib.sha256(data).hexdigest())
        return target

    def new_build_path(self):
        """A fresh temporary file path inside the cache directory for a compiler to write."""
        descriptor, path = tempfile.mkstemp(dir=self.root, suffix=self.suffix + ".tmp")
        os.close(descriptor)
        return path

    def keep_source(self, name, text):
        """Write a generated source as ``src/<name>`` (for error messages and inspection)."""
        path = os.path.join(self.source_directory, name)
        atomic_write(path, text)
        return path

    @contextlib.contextmanager
    def locked(self):
        """Exclusive lock shared by every process and thread using this cache directory
        (a thread already holding it enters again)."""
        depth = getattr(self._holding, "depth", 0)
        if depth:
            self._holding.depth = depth + 1
            try:
                yield
            finally:
                self._holding.depth = depth
            return
        with open(os.path.join(self.root, ".lock"), "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            self._holding.depth = 1
            try:
                yield
            finally:
                self._holding.depth = 0
                fcntl.flock(handle, fcntl.LOCK_UN)
