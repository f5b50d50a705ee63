"""Built-in backend plugins: ``reference`` (numpy interpreter, the oracle), later cpu, cuda
and template_accel. Each subpackage is a pluggy plugin implementing `metajit.hookspec`."""
