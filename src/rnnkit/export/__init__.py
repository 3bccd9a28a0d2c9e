"""Exporters: a trained layer or task model to a file that another program runs.

* :mod:`rnnkit.export.runtime`: the runtime file of the torch-free streaming runtime,
  :func:`rnnkit.export.runtime.export` (also ``rnnkit.runtime.export``);
* :mod:`rnnkit.export.onnx`: an ONNX file for onnxruntime and other ONNX runtimes,
  :func:`rnnkit.export.onnx.export_onnx` (needs ``pip install 'rnnkit[onnx]'``).

Both read layers through :data:`rnnkit.nn.LAYERS` and the cells of :mod:`rnnkit.cells`, and
models through :mod:`rnnkit.tasks`: this package sits above them, and nothing below it
imports it (``rnnkit export`` on the command line calls it). Importing the package imports
neither exporter.
"""
