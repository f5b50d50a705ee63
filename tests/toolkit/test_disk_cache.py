"""The toolkit's disk cache: verified lookups, corrupt entries rebuilt, atomic installs,
a lock shared between processes, a fallback for an unusable directory."""
import os
import subprocess
import sys
import textwrap

import pytest

from metajit.toolkit import disk_cache
from metajit.toolkit.disk_cache import DiskCache


def test_installed_entry_is_found_and_verified(tmp_path):
    cache = DiskCache(str(tmp_path / "dev"), suffix=".bin")
    assert cache.lookup("k1") is None
    path = cache.install_bytes("k1", b"artefact")
    assert cache.lookup("k1") == path and open(path, "rb").read() == b"artefact"
    built = tmp_path / "built.bin"
    built.write_bytes(b"linked")
    assert open(cache.install("k2", str(built)), "rb").read() == b"linked"
    assert built.exists()  # the caller's file stays
    assert not [name for name in os.listdir(cache.root) if name.endswith(".tmp")]


@pytest.mark.parametrize("damage", ["truncate", "garbage", "delete_checksum", "checksum_garbage"])
def test_corrupt_entry_is_removed_with_a_warning(tmp_path, damage):
    cache = DiskCache(str(tmp_path))
    path = cache.install_bytes("key", b"x" * 1000)
    checksum = path[:-len(cache.suffix)] + ".sha256"
    if damage == "truncate":
        os.truncate(path, 10)
    elif damage == "garbage":
        open(path, "wb").write(b"y" * 1000)
    elif damage == "delete_checksum":
        os.unlink(checksum)
    else:
        open(checksum, "w").write("0" * 64)
    with pytest.warns(RuntimeWarning, match="corrupt or incomplete; rebuilding"):
        assert cache.lookup("key") is None
    assert not os.path.exists(path) and not os.path.exists(checksum)
    cache.install_bytes("key", b"x" * 1000)
    assert cache.lookup("key") == path


def test_unusable_directory_falls_back_to_a_temporary_one(tmp_path):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the cache directory should be")
    with pytest.warns(RuntimeWarning, match="unusable.*METAJIT_CACHE_DIR"):
        cache = DiskCache(str(blocker / "cpu"))
    assert os.path.isdir(cache.root) and not cache.root.startswith(str(blocker))
    assert cache.lookup(cache.install_bytes("k", b"ok") and "k")


def test_cache_root_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("METAJIT_CACHE_DIR", str(tmp_path))
    assert disk_cache.cache_root("cuda") == os.path.join(str(tmp_path), "cuda")


def test_lock_serialises_processes(tmp_path):
    """Four processes append 'begin/end' pairs under the lock: the pairs never interleave."""
    log = tmp_path / "log"
    script = textwrap.dedent(f"""
        import os, time
        from metajit.toolkit.disk_cache import DiskCache
        cache = DiskCache({str(tmp_path / 'cache')!r})
        for _ in range(5):
            with cache.locked():
                with open({str(log)!r}, "a") as handle:
                    handle.write(f"begin {{os.getpid()}}\\n"); handle.flush()
                    time.sleep(0.01)
                    handle.write(f"end {{os.getpid()}}\\n")
    """)
    processes = [subprocess.Popen([sys.executable, "-c", script]) for _ in range(4)]
    assert all(p.wait(timeout=120) == 0 for p in processes)
    lines = log.read_text().split()
    pairs = list(zip(lines[0::4], lines[1::4], lines[2::4], lines[3::4]))
    assert len(pairs) == 20
    assert all(b == "begin" and e == "end" and p1 == p2 for b, p1, e, p2 in pairs)


def test_a_lock_that_is_not_a_file_falls_back_to_a_per_user_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(disk_cache.tempfile, "tempdir", str(tmp_path / "system-tmp"))
    (tmp_path / "system-tmp").mkdir()
    root = tmp_path / "cache" / "cpu"
    (root / ".lock").mkdir(parents=True)
    with pytest.warns(RuntimeWarning, match="unusable.*METAJIT_CACHE_DIR"):
        cache = DiskCache(str(root))
    assert cache.root == os.path.join(str(tmp_path / "system-tmp"), f"metajit-cache-{os.getuid()}", "cpu")
    with cache.locked():
        assert cache.lookup(cache.install_bytes("k", b"ok") and "k")


def test_temporary_files_of_a_killed_process_are_removed(tmp_path):
    root = tmp_path / "cpu"
    DiskCache(str(root))
    stale, fresh = root / "abc.so.4242.tmp", root / "src" / "unit.tmp"
    recent = root / "def.so.tmp"
    for path in (stale, fresh, recent):
        path.write_bytes(b"half written")
    old = disk_cache.time.time() - disk_cache.STALE_TEMPORARY_SECONDS - 60
    os.utime(stale, (old, old))
    os.utime(fresh, (old, old))
    DiskCache(str(root))
    assert not stale.exists() and not fresh.exists()
    assert recent.exists()  # another process may still be writing it
