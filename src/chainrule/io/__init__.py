"""chainrule's files: what it writes and reads back, each module one kind of file.

- :mod:`chainrule.io.files`: atomic writes of files and folders, and the one bounded,
  checked JSON reader (:func:`~chainrule.io.files.read_json_file`). Standard library
  only, and built on nothing else of chainrule's, so every unit that touches files
  (training's checkpoints, the GPT's model files, plots, the CLI) imports it.
- :mod:`chainrule.io.model_files`: the MLP model file (:func:`save`, :func:`load`, the
  caps :data:`MAX_MODEL_PARAMETERS` and :data:`MAX_MODEL_BYTES`), built on ``nn``.
- :mod:`chainrule.io.csvrows`: rows of numbers from a CSV file, for ``chainrule predict``.
- :mod:`chainrule.io.export`: an MLP to and from ``safetensors``, and to ONNX.

This package's ``__init__`` imports none of them: importing ``chainrule.io.files``
(as ``chainrule.nn``'s dependants do) must not load ``nn`` or NumPy with it.
"""

from __future__ import annotations

__all__: list[str] = []
