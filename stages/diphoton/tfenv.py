"""TensorFlow set-up for this task only: quiet logs, thread count, seeds and deterministic ops.

Imported lazily (by the diphoton stage functions and the TF science modules), never by the rest of phys-ml.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # TFP 0.25 needs Keras 2 (tf_keras), never Keras 3

import tensorflow as tf  # noqa: E402

_configured = False


def setup(seed: int, threads: int = 0) -> None:
    """Seed python/numpy/TF, turn on op determinism, and (once per process) fix the CPU thread pools."""
    global _configured
    if not _configured:
        if threads > 0:
            try:
                tf.config.threading.set_intra_op_parallelism_threads(threads)
                tf.config.threading.set_inter_op_parallelism_threads(threads)
            except RuntimeError:
                pass  # the runtime is already initialised (e.g. a second stage in the same process)
        tf.config.experimental.enable_op_determinism()
        _configured = True
    import tf_keras

    tf_keras.utils.set_random_seed(seed)
