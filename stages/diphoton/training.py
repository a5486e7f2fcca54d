"""Training the conditional MAF with one of the paper's four losses (Sec. 2.2-2.4, 3). TensorFlow, no I/O.

Events are unpaired: each epoch the MC (condition) and data (reference) training events are shuffled
independently and paired by position. RMSProp (Sec. 3).

Convergence rule, the same for the four losses (``PlateauRule``): after each epoch the flow transforms a fixed set
of validation MC events with fixed base noise and ``ValidationScore`` compares them with the validation data. When
the score has not improved on its best by more than ``min_improvement`` for ``patience`` epochs, the learning rate
drops by ``lr_drop``; at the plateau where it would drop below ``lr_end`` the run has converged and stops. The
epoch with the lowest score is the one kept (never chosen on the evaluated test events). The paper decays the
learning rate as a square root from 1e-3 to 1e-5 over a fixed 1000 epochs; a run whose length the rule sets has
no fixed end to decay towards, so the rate falls in steps at the plateaus instead, over the same range.
"""

from __future__ import annotations

from . import tfenv  # noqa: F401

from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_keras  # noqa: E402

from phys_ml.stages.common.divergence import DivergenceGuard  # noqa: E402

from . import losses  # noqa: E402
from .config import TrainConfig  # noqa: E402
from .events import with_mass  # noqa: E402
from .flow import ConditionalMAF  # noqa: E402


class NonFinite(Exception):
    """The run diverged: a step's loss or gradients became NaN/inf, or the validation loss broke the shared
    divergence rule; ``epoch`` is where, ``last_good`` the epoch of the kept (best so far) checkpoint, 0 if none,
    ``reason`` what happened."""

    def __init__(self, epoch: int, last_good: int, reason: str):
        super().__init__(f"diverged at epoch {epoch}: {reason}")
        self.epoch, self.last_good, self.reason = epoch, last_good, reason


@dataclass
class History:
    epoch: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    l1: list[float] = field(default_factory=list)  # MDMM: primary (KL), per epoch mean
    l2: list[float] = field(default_factory=list)  # MDMM: constraint (MMD)
    lam: list[float] = field(default_factory=list)  # MDMM: lambda at the end of the epoch
    score: list[float] = field(default_factory=list)  # the convergence rule's validation score
    score_kl: list[float] = field(default_factory=list)  # its two terms (fractions of the untransformed MC's)
    score_mmd: list[float] = field(default_factory=list)
    score_corr: list[float] = field(default_factory=list)
    epsilon: float = float("nan")
    data_mmd: float = float("nan")
    best_epoch: int = 0
    stopped: str = ""  # "converged" (patience ran out) or "epoch cap"


def build_flow(cfg: TrainConfig, dim: int = 6) -> ConditionalMAF:
    return ConditionalMAF(dim=dim, n_blocks=cfg.n_blocks, hidden_units=tuple(cfg.hidden_units),
                          log_scale_bound=cfg.log_scale_bound)


def batch_size(cfg: TrainConfig, loss: str) -> int:
    return cfg.batch_size_mmd if loss in ("mmd", "mdmm") else cfg.batch_size


def data_mmd_level(data: np.ndarray, cfg: TrainConfig, rng: np.random.Generator, n_pairs: int = 20) -> float:
    """Mean MMD between independent batches of the data (the 'data-vs-data' value the constraint is set by)."""
    b = min(cfg.batch_size_mmd, len(data) // 2)
    vals = []
    for _ in range(n_pairs):
        idx = rng.permutation(len(data))[: 2 * b]
        vals.append(float(losses.mmd(data[idx[:b]], data[idx[b:]], cfg.mmd_sigmas, cfg.mmd_form)))
    return float(np.mean(vals))


MMD_SCORE_BLOCK = 2000  # validation events per block of the score's MMD (all pairs within a block)


class ValidationScore:
    """The convergence rule's score, the same for every loss, on the validation split.

    score = KL / KL_MC + MMD / MMD_MC + C / C_MC, three gaps between the transformed validation MC and the
    validation data, each divided by its value for the untransformed MC (so the MC scores 3):
      KL   the mean over the six features of the 1-D KL between KDEs (fixed grid, as the KL loss): the marginals;
      MMD  the unbiased MMD^2 with the MMD loss's kernel (blocks of MMD_SCORE_BLOCK events): the joint density;
      C    the mean |r - r_data| over all 21 pairs of the 7 columns (six features and m_gg, physical units and range,
           photons relabelled by pT, as Table 1): the correlations, to which a broad-kernel MMD is nearly blind.
    The MC events and the base noise are fixed, so scores of two epochs differ only by the flow. ``physical`` maps
    flow-space events (n, 6) to physical features (identity if not given)."""

    def __init__(self, mc_val: np.ndarray, data_val: np.ndarray, cfg: TrainConfig, seed: int,
                 physical: Callable[[np.ndarray], np.ndarray] | None = None):
        n = min(cfg.val_events, len(mc_val), len(data_val))
        self.mc, self.data = np.asarray(mc_val[:n], np.float32), np.asarray(data_val[:n], np.float32)
        self.physical = physical or (lambda x: x)
        self.z = np.random.default_rng([seed, 1]).standard_normal(self.mc.shape).astype(np.float32)
        self.grid = losses.kde_grid(self.data, cfg.kde_grid)
        self.bandwidth = losses.silverman_bandwidths(self.data, cfg.kde_bandwidth_factor)
        self.p = losses.kde_on_grid_chunked(self.data, self.grid, self.bandwidth)
        self.r_data = self._correlations(self.data)
        self.sigma, self.block = cfg.mmd_sigmas, min(MMD_SCORE_BLOCK, n)
        self.ref = self.terms(self.mc)

    def _correlations(self, x: np.ndarray) -> np.ndarray:
        """The 21 Pearson r of the 7 columns (upper triangle) of flow-space events x."""
        c = np.corrcoef(with_mass(self.physical(np.asarray(x, np.float64))), rowvar=False)
        return c[np.triu_indices(c.shape[0], 1)]

    def terms(self, gen: np.ndarray) -> tuple[float, float, float]:
        """(mean per-feature KL, MMD^2, mean |r - r_data|) of flow-space events ``gen`` against the validation data."""
        q = losses.kde_on_grid_chunked(gen, self.grid, self.bandwidth)
        kl = float(np.mean(losses.kl_per_feature(self.p, q)))
        n = len(gen) // self.block * self.block
        mmd = np.mean([float(losses.mmd_unbiased(gen[i:i + self.block], self.data[i:i + self.block], self.sigma))
                       for i in range(0, n, self.block)])
        return kl, float(mmd), float(np.mean(np.abs(self._correlations(gen) - self.r_data)))

    def __call__(self, transform: Callable) -> tuple[float, float, float, float]:
        """(score, KL term, MMD term, correlation term) of the flow whose ``transform(x_c, z)`` is given."""
        gen = np.concatenate([transform(self.mc[i:i + 20_000], self.z[i:i + 20_000]).numpy()
                              for i in range(0, len(self.mc), 20_000)])
        parts = [v / max(abs(ref), 1e-12) for v, ref in zip(self.terms(gen), self.ref)]
        return sum(parts), *parts


@dataclass
class PlateauRule:
    """The convergence rule. ``update(score)`` -> (is the best score so far, action): action "drop" when the
    score has not improved on its best by more than ``min_improvement`` (relative) for ``patience`` epochs (the
    learning rate ``lr`` is then multiplied by ``lr_drop``), "stop" at such a plateau when the rate would fall
    below ``lr_end``, else "". The best itself is any lower score."""

    patience: int
    min_improvement: float
    lr: float
    lr_drop: float
    lr_end: float
    best: float = float("inf")
    reference: float = float("inf")  # the score the next real improvement is measured against
    waited: int = 0

    def update(self, score: float) -> tuple[bool, str]:
        is_best = score < self.best
        self.best = min(self.best, score)
        if self.reference == float("inf") or score < self.reference - self.min_improvement * abs(self.reference):
            self.reference, self.waited = score, 0
            return is_best, ""
        self.waited += 1
        if self.waited < self.patience:
            return is_best, ""
        self.waited = 0
        if self.lr * self.lr_drop < self.lr_end * (1.0 - 1e-6):
            return is_best, "stop"
        self.lr *= self.lr_drop
        return is_best, "drop"


class Trainer:
    """One flow, one loss. ``run`` trains until the convergence rule stops it (at most cfg.epochs);
    ``on_epoch(epoch, history, is_best)`` is called after each finite epoch (the pipeline saves the best
    checkpoint there)."""

    def __init__(self, flow: ConditionalMAF, loss: str, cfg: TrainConfig, mc_train, data_train, mc_val, data_val,
                 physical: Callable[[np.ndarray], np.ndarray] | None = None, kernel: Callable | None = None):
        self.flow, self.loss, self.cfg = flow, loss, cfg
        # what the MMD kernel compares (kernel_features.KernelFeatures; default: the flow's features)
        self.kernel = kernel or (lambda z: tf.convert_to_tensor(z, tf.float32))
        self.mc, self.data = np.asarray(mc_train, np.float32), np.asarray(data_train, np.float32)
        self.mc_val, self.data_val = np.asarray(mc_val, np.float32), np.asarray(data_val, np.float32)
        self.batch = min(batch_size(cfg, loss), len(self.mc), len(self.data))
        self.rng = np.random.default_rng(cfg.seed)
        n_batches = min(len(self.mc), len(self.data)) // self.batch
        if cfg.max_steps_per_epoch:
            n_batches = min(n_batches, cfg.max_steps_per_epoch)
        self.steps_per_epoch = max(n_batches, 1)
        self.optimizer = tf_keras.optimizers.RMSprop(learning_rate=cfg.lr_start)  # a variable: the rule lowers it
        self.lam = tf.Variable(cfg.mdmm_lambda_init, dtype=tf.float32, trainable=False, name="mdmm_lambda")
        self.history = History()
        if loss in ("kl", "mdmm"):
            sub = self.data[self.rng.permutation(len(self.data))[: cfg.kde_data_events]]
            self.grid = tf.constant(losses.kde_grid(sub, cfg.kde_grid))
            self.bandwidth = tf.constant(losses.silverman_bandwidths(sub, cfg.kde_bandwidth_factor) *
                                         (len(sub) / self.batch) ** 0.2)  # the bandwidth of a batch-sized KDE
            self.p_data = tf.constant(losses.kde_on_grid_chunked(sub, self.grid.numpy(), self.bandwidth.numpy()))
        if loss in ("mmd", "mdmm"):
            self.history.data_mmd = data_mmd_level(np.asarray(self.kernel(self.data)), cfg, self.rng)
            self.history.epsilon = (1.0 + cfg.mdmm_epsilon_rel) * self.history.data_mmd
        self.scorer = ValidationScore(self.mc_val, self.data_val, cfg, cfg.seed, physical)
        spec = tf.TensorSpec([None, flow.dim], tf.float32)
        self._step = tf.function(self._train_step, input_signature=[spec, spec, spec])
        self._eval = tf.function(self._losses, input_signature=[spec, spec, spec])
        self._transform = compiled_transform(flow)

    # -- losses of one batch: (objective, L1, L2) -------------------------------------------------------
    def _losses(self, x_c, x_ref, z):
        cfg = self.cfg
        if self.loss == "log":  # Sec. 2.2: -log p(x_ref - x_c | x_c)
            nll = -tf.reduce_mean(self.flow.log_prob(x_ref - x_c, x_c))
            return nll, nll, tf.constant(0.0)
        gen = self.flow.transform(x_c, z)
        if self.loss == "kl":
            kl = losses.kde_kl(self.p_data, gen, self.grid, self.bandwidth)
            return kl, kl, tf.constant(0.0)
        mmd = losses.mmd(self.kernel(gen), self.kernel(x_ref), cfg.mmd_sigmas, cfg.mmd_form)
        if self.loss == "mmd":
            return mmd, tf.constant(0.0), mmd
        kl = losses.kde_kl(self.p_data, gen, self.grid, self.bandwidth)
        total = losses.mdmm_lagrangian(kl, mmd, self.lam, self.history.epsilon, cfg.mdmm_damping)
        return total, kl, mmd

    def _train_step(self, x_c, x_ref, z):
        variables = self.flow.trainable_variables
        with tf.GradientTape() as tape:
            total, l1, l2 = self._losses(x_c, x_ref, z)
        grads = tape.gradient(total, variables)
        if self.cfg.clip_norm > 0:
            grads, _ = tf.clip_by_global_norm(grads, self.cfg.clip_norm)
        finite = tf.math.is_finite(total) & tf.reduce_all([tf.reduce_all(tf.math.is_finite(g)) for g in grads])
        if finite:
            self.optimizer.apply_gradients(zip(grads, variables))
        return total, l1, l2, finite

    def _pairs(self, mc, data, n_batches):
        """Unpaired events: independent shuffles of MC and data, paired by position, plus base noise."""
        b = min(self.batch, len(mc), len(data))
        i_mc = self.rng.permutation(len(mc))
        i_data = self.rng.permutation(len(data))
        for k in range(n_batches):
            sl = slice(k * b, (k + 1) * b)
            z = self.rng.standard_normal((b, self.flow.dim)).astype(np.float32)
            yield mc[i_mc[sl]], data[i_data[sl]], z

    def validation_loss(self) -> float:
        n = max(min(len(self.mc_val), len(self.data_val)) // self.batch, 1)
        vals = [float(self._eval(*batch)[0]) for batch in self._pairs(self.mc_val, self.data_val, min(n, 5))]
        return float(np.mean(vals))

    def run(self, on_epoch: Callable[[int, History, bool], None] | None = None,
            progress: Callable[[int, History], None] | None = None) -> History:
        h, last_good = self.history, 0
        guard = DivergenceGuard(f"diphoton train {self.loss}")  # the shared rule, on the validation loss
        rule = PlateauRule(self.cfg.patience, self.cfg.min_improvement, self.cfg.lr_start, self.cfg.lr_drop,
                           self.cfg.lr_end)
        h.stopped = "epoch cap"
        for epoch in range(1, self.cfg.epochs + 1):
            sums = np.zeros(3)
            for x_c, x_ref, z in self._pairs(self.mc, self.data, self.steps_per_epoch):
                total, l1, l2, finite = self._step(x_c, x_ref, z)
                if not bool(finite):
                    raise NonFinite(epoch, last_good, "a training step's loss or gradients became NaN/inf")
                sums += [float(total), float(l1), float(l2)]
                if self.loss == "mdmm":  # gradient ascent on lambda (Platt & Barr 1987)
                    self.lam.assign(losses.mdmm_lambda_step(float(self.lam), float(l2), self.history.epsilon,
                                                            self.cfg.mdmm_lambda_lr))
            mean = sums / self.steps_per_epoch
            val = self.validation_loss()
            if guard.diverged(val):  # (the epoch is named by the caller)
                raise NonFinite(epoch, last_good, f"validation {guard.reason}")
            h.epoch.append(epoch)
            h.loss.append(float(mean[0]))
            h.val_loss.append(val)
            h.lr.append(rule.lr)  # the rate of this epoch
            h.l1.append(float(mean[1]))
            h.l2.append(float(mean[2]))
            h.lam.append(float(self.lam))
            score = self.scorer(self._transform)
            if not np.isfinite(score[0]):
                raise NonFinite(epoch, last_good, f"validation score became {score[0]}")
            for values, v in zip((h.score, h.score_kl, h.score_mmd, h.score_corr), score):
                values.append(v)
            is_best, action = rule.update(score[0])
            if is_best:
                h.best_epoch = last_good = epoch
            if on_epoch is not None:
                on_epoch(epoch, h, is_best)
            if progress is not None:
                progress(epoch, h)
            if action == "stop":
                h.stopped = "converged"
                break
            if action == "drop":
                self.optimizer.learning_rate.assign(rule.lr)
        return h


def compiled_transform(flow: ConditionalMAF) -> Callable:
    """flow.transform(x_c, z) as one traced tf.function (build it once per flow: each build traces again)."""
    return tf.function(flow.transform, input_signature=[tf.TensorSpec([None, flow.dim], tf.float32)] * 2)


def sample_transformed(flow: ConditionalMAF, x_c: np.ndarray, seed: int, batch: int = 20_000,
                       deterministic: bool = False, transform: Callable | None = None) -> np.ndarray:
    """Transformed MC (standardized): x_c + delta, delta ~ p(delta | x_c), in batches; ``deterministic``: the
    delta of base noise z = 0 (the flow's noise-free part). ``transform``: a ``compiled_transform`` of the flow."""
    rng = np.random.default_rng(seed)
    fn = transform or compiled_transform(flow)
    out = []
    for start in range(0, len(x_c), batch):
        xc = np.asarray(x_c[start:start + batch], np.float32)
        z = np.zeros_like(xc) if deterministic else rng.standard_normal(xc.shape).astype(np.float32)
        out.append(fn(xc, z).numpy())
    return np.concatenate(out)
