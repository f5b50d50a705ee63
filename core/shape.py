"""`Shape`: what ``var.shape`` returns, a tuple that also behaves like Jittor's list shape.

Jittor's ``var.shape`` is a list, PyTorch's a ``torch.Size`` (a tuple). A `Shape` is a
tuple of ints (hashable, immutable, accepted wherever a shape is) that also compares
equal to a list of the same sizes and concatenates with lists, so code written for
either framework keeps working::

    >>> s = jt.zeros(2, 3).shape
    >>> s == [2, 3], s == (2, 3), s[1:] == [3], s + [4], s.numel()
    (True, True, True, (2, 3, 4), 6)
"""


class Shape(tuple):
    """A tuple of dimension sizes that also compares equal to (and adds to) lists."""

    __slots__ = ()

    def __eq__(self, other):
        if type(other) is list:
            other = tuple(other)
        return tuple.__eq__(self, other)

    def __ne__(self, other):
        if type(other) is list:
            other = tuple(other)
        return tuple.__ne__(self, other)

    __hash__ = tuple.__hash__

    def __getitem__(self, item):
        value = tuple.__getitem__(self, item)
        return Shape(value) if type(item) is slice else value

    def __add__(self, other):
        if isinstance(other, list):
            other = tuple(other)
        result = tuple.__add__(self, other)
        return result if result is NotImplemented else Shape(result)

    def __radd__(self, other):
        if isinstance(other, (list, tuple)):
            return Shape(tuple(other) + tuple(self))
        return NotImplemented

    def numel(self):
        """The number of elements of an array of this shape (``torch.Size.numel``)."""
        count = 1
        for size in self:
            count *= size
        return count
