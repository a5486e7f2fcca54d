"""The data-vs-X discriminator of Sec. 3: 2 x 32 ReLU, sigmoid output, binary cross-entropy, batch 1000.

An AUC near 0.5 means the classifier cannot tell X from data (the paper's Fig. 3 right). TensorFlow (tf_keras).
"""

from __future__ import annotations

from . import tfenv  # noqa: F401

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_keras  # noqa: E402

from .metrics import auc, roc_curve  # noqa: E402


def discriminate(data: np.ndarray, other: np.ndarray, hidden=(32, 32), epochs: int = 10, batch: int = 1000,
                 seed: int = 0, test_fraction: float = 0.3) -> dict:
    """Train on standardized (data=1, other=0) events, return test AUC and ROC curve."""
    rng = np.random.default_rng(seed)
    n = min(len(data), len(other))
    x = np.concatenate([data[rng.permutation(len(data))[:n]], other[rng.permutation(len(other))[:n]]])
    y = np.concatenate([np.ones(n), np.zeros(n)]).astype(np.float32)
    perm = rng.permutation(2 * n)
    x, y = x[perm].astype(np.float32), y[perm]
    n_test = int(test_fraction * len(x))
    mu, sd = x[n_test:].mean(0), x[n_test:].std(0) + 1e-12
    x = (x - mu) / sd
    tf_keras.utils.set_random_seed(seed)
    model = tf_keras.Sequential(
        [tf_keras.layers.Input(shape=(x.shape[1],))]
        + [tf_keras.layers.Dense(h, activation="relu") for h in hidden]
        + [tf_keras.layers.Dense(1, activation="sigmoid")]
    )
    # a plain minibatch loop instead of model.fit/predict: same BCE + Adam training, without the tf.data
    # pipeline (which logs a spurious NodeDef error with tf_keras on TF 2.21) or retracing warnings
    optimizer = tf_keras.optimizers.Adam(1e-3)
    bce = tf_keras.losses.BinaryCrossentropy()

    def step(xb, yb):  # eager: a few hundred small steps, no tracing
        with tf.GradientTape() as tape:
            loss = bce(yb, model(xb, training=True))
        optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))

    x_tr, y_tr = x[n_test:], y[n_test:, None]
    for _ in range(epochs):
        order = rng.permutation(len(x_tr))
        for i in range(0, len(x_tr), batch):
            idx = order[i:i + batch]
            step(x_tr[idx], y_tr[idx])
    test = x[:n_test]
    scores = np.concatenate([model(test[i:i + 10_000], training=False).numpy().ravel()
                             for i in range(0, n_test, 10_000)])
    fpr, tpr = roc_curve(y[:n_test], scores)
    return {"auc": auc(y[:n_test], scores), "fpr": fpr, "tpr": tpr}
