"""Tools around the framework: `pytorch_converter` turns PyTorch model code into metajit code;
`data` is PyTorch's ``torch.utils.data`` spelling of `metajit.dataset`."""
from . import data
