"""File pipes: list files, open them, read their lines or CSV rows::

    rows = FileLister("data", masks="*.csv", recursive=True).open_files().parse_csv(skip_lines=1)
    lines = FileLister("logs", "*.txt").open_files().readlines(return_path=False)

Files are listed in sorted order, so every reader (and every DataLoader worker) sees the
same list; put ``sharding_filter()`` after the listing to read each file in one worker.
"""
import csv
import fnmatch
import itertools
import os

from ..errors import MetajitFileNotFoundError, MetajitValueError
from .datapipe import IterDataPipe, check_count, functional_datapipe


def _matches(name, masks):
    return not masks or any(fnmatch.fnmatch(name, mask) for mask in masks)


def list_files(root, masks=(), recursive=False):
    """The files under directory ``root`` whose names match one of the glob ``masks`` (all
    files without masks), in sorted order, descending into subdirectories if ``recursive``;
    a file ``root`` is listed itself::

        list(list_files("data", ["*.csv"]))  # ['data/a.csv', 'data/b.csv']
    """
    if os.path.isfile(root):
        if _matches(os.path.basename(root), masks):
            yield root
        return
    if not os.path.isdir(root):
        raise MetajitFileNotFoundError(f"FileLister: {os.fspath(root)!r} is neither a directory nor a file")
    for folder, subfolders, files in os.walk(root):
        subfolders.sort()
        yield from (os.path.join(folder, name) for name in sorted(files) if _matches(name, masks))
        if not recursive:
            return


@functional_datapipe("list_files")
class FileLister(IterDataPipe):
    """The paths of the files under ``root`` (a directory, a file, a list of them, or an iter
    pipe of them) whose names match the glob ``masks`` (a pattern or a list; all files when
    empty), sorted, recursively if asked, absolute if ``abspath``::

        list(FileLister("data", masks=["*.txt", "*.csv"]))  # ['data/a.csv', 'data/b.txt']
    """

    def __init__(self, root=".", masks="", recursive=False, abspath=False):
        self.roots = [root] if isinstance(root, (str, os.PathLike)) else root
        self.masks = [masks] if isinstance(masks, str) and masks else list(masks)
        self.recursive, self.abspath = recursive, abspath

    def __iter__(self):
        for root in self.roots:
            for path in list_files(root, self.masks, self.recursive):
                yield os.path.abspath(path) if self.abspath else path


_READ_MODES = {"r": "r", "t": "r", "rt": "r", "b": "rb", "rb": "rb"}


@functional_datapipe("open_files")
class FileOpener(IterDataPipe):
    """``(path, stream)`` for each path, the file opened for reading in ``mode`` (``"r"``
    text, ``"b"``/``"rb"`` binary). A stream stays open until the next one is asked for
    (or the iteration ends), so read it before moving on, as ``readlines`` and
    ``parse_csv`` do::

        for path, stream in FileLister("data", "*.txt").open_files():
            print(path, stream.read())
    """

    def __init__(self, source_datapipe, mode="r", encoding=None):
        if mode not in _READ_MODES:
            raise MetajitValueError(f"FileOpener: mode {mode!r} is not a read mode; use 'r' (text) or 'b' (binary)")
        if encoding is not None and _READ_MODES[mode] == "rb":
            raise MetajitValueError("FileOpener: an encoding applies to text mode; drop it or use mode='r'")
        self.source_datapipe, self.mode, self.encoding = source_datapipe, _READ_MODES[mode], encoding

    def __iter__(self):
        for path in self.source_datapipe:
            with open(path, self.mode, encoding=self.encoding) as stream:
                yield path, stream

    def __len__(self):
        return len(self.source_datapipe)


def _text_lines(stream, encoding):
    """A stream's lines as text, those of a binary stream decoded with ``encoding``."""
    for line in stream:
        yield line.decode(encoding) if isinstance(line, bytes) else line


class _StreamReader(IterDataPipe):
    """Base of the pipes that turn ``(path, stream)`` pairs into records: ``read(stream)``
    gives a stream's records; the first ``skip_lines`` of each are skipped."""

    def __init__(self, source_datapipe, skip_lines, return_path):
        self.source_datapipe = source_datapipe
        self.skip_lines = check_count(f"{type(self).__name__}: skip_lines", skip_lines, minimum=0)
        self.return_path = return_path

    def read(self, stream):
        """The records of one stream."""
        raise NotImplementedError

    def __iter__(self):
        for path, stream in self.source_datapipe:
            for record in itertools.islice(self.read(stream), self.skip_lines, None):
                yield (path, record) if self.return_path else record


@functional_datapipe("readlines")
class LineReader(_StreamReader):
    """``(path, line)`` for each line of each stream (just the line without
    ``return_path``), without its line ending if ``strip_newline``; lines of binary streams
    stay bytes unless ``decode``::

        list(FileLister("notes.txt").open_files().readlines(return_path=False))  # ['first', 'second']
    """

    def __init__(self, source_datapipe, skip_lines=0, strip_newline=True, decode=False, encoding="utf-8",
                 return_path=True):
        super().__init__(source_datapipe, skip_lines, return_path)
        self.strip_newline, self.decode, self.encoding = strip_newline, decode, encoding

    def read(self, stream):
        for line in _text_lines(stream, self.encoding) if self.decode else stream:
            if self.strip_newline:
                line = line.rstrip(b"\r\n" if isinstance(line, bytes) else "\r\n")
            yield line


@functional_datapipe("parse_csv")
class CSVParser(_StreamReader):
    """The rows of each CSV stream as lists of strings (tuples if ``as_tuple``), read by
    Python's ``csv`` module with ``delimiter`` and any other ``csv`` format parameters;
    ``(path, row)`` if ``return_path``; binary streams are decoded with ``encoding``::

        list(FileLister("table.csv").open_files().parse_csv(skip_lines=1))  # [['1', 'a'], ['2', 'b']]
    """

    def __init__(self, source_datapipe, skip_lines=0, delimiter=",", encoding="utf-8", return_path=False,
                 as_tuple=False, **format_parameters):
        super().__init__(source_datapipe, skip_lines, return_path)
        self.encoding, self.as_tuple = encoding, as_tuple
        self.format_parameters = dict(format_parameters, delimiter=delimiter)

    def read(self, stream):
        for row in csv.reader(_text_lines(stream, self.encoding), **self.format_parameters):
            yield tuple(row) if self.as_tuple else row
