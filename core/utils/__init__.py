"""Tools around the framework: `pytorch_converter` turns PyTorch model code into metajit code."""
