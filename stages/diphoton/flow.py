"""Conditional masked autoregressive flow in TensorFlow Probability (Sec. 2.2; Papamakarios et al. 2017).

The flow models delta = x_ref - x_c given the condition x_c (both standardized), so a transformed MC event is
x_c + delta with delta drawn from p(delta | x_c). Block i is ``tfb.MaskedAutoregressiveFlow`` named ``maf{i}``
around a conditional ``tfb.AutoregressiveNetwork`` (MADE, tf_keras), with reversing permutations between blocks.

Two traps handled here: the condition only reaches a block through ``bijector_kwargs`` keyed by its exact name
(a wrong key is silently ignored), and an unbounded log-scale overflows at initialisation with 10 blocks, so it
is bounded with ``bound * tanh(s / bound)`` and the output layers start small (near the identity).
"""

from __future__ import annotations

from . import tfenv  # noqa: F401  (sets TF env variables before TF is imported)

import tensorflow as tf  # noqa: E402
import tensorflow_probability as tfp  # noqa: E402

tfb, tfd = tfp.bijectors, tfp.distributions


class ConditionalMAF(tf.Module):
    """p(delta | x_c) as a chain of conditional MAF blocks on a standard Gaussian base."""

    def __init__(self, dim: int = 6, n_blocks: int = 10, hidden_units=(128, 128), log_scale_bound: float = 3.0,
                 init_scale: float = 0.01, name: str = "cmaf"):
        super().__init__(name=name)
        self.dim = dim
        self.block_names = [f"maf{i}" for i in range(n_blocks)]
        self.made = [
            tfb.AutoregressiveNetwork(
                params=2, event_shape=[dim], conditional=True, conditional_event_shape=[dim],
                hidden_units=list(hidden_units), activation="relu", name=f"made{i}",
            )
            for i in range(n_blocks)
        ]
        bound = float(log_scale_bound)

        def shift_and_log_scale(net):
            def fn(x, conditional_input=None):
                out = net(x, conditional_input=conditional_input)
                shift, log_scale = tf.unstack(out, axis=-1)
                return shift, bound * tf.tanh(log_scale / bound)

            return fn

        blocks = []
        for i, (net, name) in enumerate(zip(self.made, self.block_names)):
            if i > 0:
                blocks.append(tfb.Permute(permutation=list(reversed(range(dim))), name=f"perm{i}"))
            blocks.append(tfb.MaskedAutoregressiveFlow(shift_and_log_scale_fn=shift_and_log_scale(net), name=name))
        # tfb.Chain applies its list right to left: base z -> maf0 -> perm1 -> maf1 -> ... -> delta
        self.bijector = tfb.Chain(list(reversed(blocks)), name="chain")
        self.base = tfd.MultivariateNormalDiag(loc=tf.zeros(dim), name="base")
        self.distribution = tfd.TransformedDistribution(self.base, self.bijector, name="delta")
        self._build(init_scale)

    def _build(self, init_scale: float) -> None:
        """Create every MADE's weights, then shrink each output layer so the flow starts near the identity."""
        x = tf.zeros([1, self.dim])
        for net in self.made:
            net(x, conditional_input=x)
            kernels = [v for v in net.trainable_variables if "kernel" in v.name]
            # the output layer's kernel and its conditional kernel (the last two) give shift and log-scale
            for v in kernels[-2:]:
                assert v.shape[-1] == 2 * self.dim, v.shape
                v.assign(v * init_scale)

    def kwargs(self, condition):
        """bijector_kwargs routing the condition to every block by its name."""
        return {name: {"conditional_input": condition} for name in self.block_names}

    def log_prob(self, delta, condition):
        """log p(delta | condition), shapes (n, dim), (n, dim) -> (n,)."""
        return self.distribution.log_prob(delta, bijector_kwargs=self.kwargs(condition))

    def delta(self, z, condition):
        """Reparameterized sample: base noise z (n, dim) -> delta (n, dim), differentiable in the weights."""
        return self.bijector.forward(z, **self.kwargs(condition))

    def transform(self, x_c, z):
        """Transformed MC (standardized): x_c + delta(z | x_c)."""
        return x_c + self.delta(z, x_c)
