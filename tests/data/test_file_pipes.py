"""File pipes on files written to a temporary directory, against os.walk/fnmatch and the
files' own text."""
import csv
import fnmatch
import os

import pytest

import metajit as jt
from metajit.data import FileLister, FileOpener, IterableWrapper


@pytest.fixture
def tree(tmp_path):
    """tmp/{a.txt, b.csv, c.txt, sub/{d.txt, deeper/e.csv}}"""
    files = {"a.txt": "alpha\nbeta\n", "b.csv": "n,word\n1,one\n2,\"two, too\"\n", "c.txt": "gamma\r\ndelta",
             "sub/d.txt": "delta\n", "sub/deeper/e.csv": "n,word\n3,three\n"}
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text.encode())
    return tmp_path


def walk(root, masks, recursive):
    """The oracle: os.walk (directories in sorted order) and fnmatch, each directory's files sorted."""
    found = []
    for folder, subfolders, files in os.walk(root):
        subfolders.sort()
        found += sorted(os.path.join(folder, f) for f in files
                        if not masks or any(fnmatch.fnmatch(f, m) for m in masks))
        if not recursive:
            break
    return found


@pytest.mark.parametrize("masks,recursive", [("", False), ("", True), ("*.txt", True), (["*.csv", "a*"], False)])
def test_listing_matches_os_walk(tree, masks, recursive):
    listed = list(FileLister(str(tree), masks, recursive=recursive))
    assert listed == walk(str(tree), [masks] if isinstance(masks, str) and masks else masks, recursive)


def test_listing_files_roots_lists_and_pipes(tree, monkeypatch):
    assert list(FileLister(tree / "a.txt")) == [tree / "a.txt"]
    assert list(FileLister([str(tree / "sub"), str(tree / "b.csv")])) == [str(tree / "sub/d.txt"), str(tree / "b.csv")]
    assert list(IterableWrapper([str(tree / "sub")]).list_files(recursive=True)) == \
        [str(tree / "sub/d.txt"), str(tree / "sub/deeper/e.csv")]
    monkeypatch.chdir(tree)
    assert list(FileLister(".", "a.*", abspath=True)) == [str(tree / "a.txt")]
    with pytest.raises(jt.MetajitFileNotFoundError, match="missing' is neither a directory nor a file"):
        list(FileLister(str(tree / "missing")))


def test_opening_yields_paths_and_readable_streams(tree):
    paths = FileLister(str(tree), "*.txt")
    texts = [(path, stream.read()) for path, stream in paths.open_files()]
    assert texts == [(p, open(p).read()) for p in walk(str(tree), ["*.txt"], False)]
    assert [stream.read() for _, stream in paths.open_files(mode="b")][0] == b"alpha\nbeta\n"
    assert len(IterableWrapper(["x"]).open_files()) == 1
    with pytest.raises(jt.MetajitValueError, match="mode 'w' is not a read mode"):
        FileOpener(paths, mode="w")
    with pytest.raises(jt.MetajitValueError, match="encoding applies to text mode"):
        FileOpener(paths, mode="b", encoding="utf-8")


def test_a_stream_closes_when_the_next_one_is_asked_for(tree):
    streams = FileLister(str(tree), "*.txt").open_files()
    iterator = iter(streams)
    _, first = next(iterator)
    assert not first.closed
    next(iterator)
    assert first.closed


def test_readlines_text_and_binary(tree):
    files = FileLister(str(tree), "*.txt")
    assert list(files.open_files().readlines(return_path=False)) == ["alpha", "beta", "gamma", "delta"]
    assert list(files.open_files().readlines(strip_newline=False, return_path=False))[:2] == ["alpha\n", "beta\n"]
    assert list(files.open_files().readlines(skip_lines=1)) == [(str(tree / "a.txt"), "beta"),
                                                                (str(tree / "c.txt"), "delta")]
    assert list(files.open_files(mode="b").readlines(return_path=False))[2] == b"gamma"
    assert list(files.open_files(mode="b").readlines(decode=True, return_path=False))[2] == "gamma"
    with pytest.raises(jt.MetajitValueError, match="skip_lines must be an int >= 0"):
        files.open_files().readlines(skip_lines=-1)


@pytest.mark.parametrize("mode", ["r", "b"])
def test_csv_rows_match_the_csv_module(tree, mode):
    tables = FileLister(str(tree), "*.csv", recursive=True)
    expected = []
    for path in walk(str(tree), ["*.csv"], True):
        with open(path, newline="") as stream:
            expected += list(csv.reader(stream))[1:]
    assert list(tables.open_files(mode=mode).parse_csv(skip_lines=1)) == expected
    rows = list(tables.open_files(mode=mode).parse_csv(as_tuple=True, return_path=True))
    assert rows[2] == (str(tree / "b.csv"), ("2", "two, too"))
    assert list(IterableWrapper([str(tree / "a.txt")]).open_files().parse_csv(delimiter="l")) == \
        [["a", "pha"], ["beta"]]
