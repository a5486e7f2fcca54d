"""TensorFlow set-up for this task only: quiet logs, thread count, seeds and deterministic ops.

Imported lazily (by the diphoton stage functions and the TF science modules), never by the rest of phys-ml.

Quiet start on CPU machines: TF_CPP_MIN_LOG_LEVEL=2 (set before TF is imported) drops TF's C++ INFO and WARNING
lines, but TF 2.21 writes a few lines to stderr before its logger is initialised, where no variable reaches them
(the oneDNN notice, "Could not find cuda drivers", "failed call to cuInit" when there is no GPU). So stderr is
captured while TF is imported and its devices are listed, and replayed without exactly those known lines;
everything else (real errors, and the CUDA lines on a machine that has an NVIDIA device) is printed as it was.
TF_CPP_MIN_LOG_LEVEL=0 in the environment turns the filtering off.
"""

from __future__ import annotations

import os
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # TFP 0.25 needs Keras 2 (tf_keras), never Keras 3

_BENIGN = ("All log messages before absl::InitializeLog() is called", "oneDNN custom operations are on")
_BENIGN_WITHOUT_GPU = ("Could not find cuda drivers on your machine", "failed call to cuInit")


def _import_tensorflow_quietly():
    """Import TF (and list its GPUs, which calls cuInit) with fd 2 captured, then replay the unknown lines."""
    if os.environ["TF_CPP_MIN_LOG_LEVEL"] == "0":
        import tensorflow as tf

        return tf
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            import tensorflow as tf

            gpus = tf.config.list_physical_devices("GPU")
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            lines = tmp.read().decode(errors="replace").splitlines()
    benign = _BENIGN + (() if gpus or os.path.exists("/dev/nvidia0") else _BENIGN_WITHOUT_GPU)
    for line in lines:
        if not any(text in line for text in benign):
            print(line, file=sys.stderr)
    return tf


tf = _import_tensorflow_quietly()

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
