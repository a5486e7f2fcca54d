"""Published numbers of Xie, Yao & Jiang, "The effect of different optimization strategies to physics-constrained
deep learning for soil moisture estimation" (shared/papers/rre-pdl-optimizers.txt). Shown beside ours in the
report; never written into our outputs as results."""

# Table 1: relative L2 error over the whole space-time domain, (re_psi, re_theta), keyed (optimizer, batch mode)
TABLE1 = {
    ("gd", "mini"): (0.0649, 0.0140),
    ("rmsprop", "mini"): (0.0106, 0.0029),
    ("adam", "mini"): (0.0079, 0.0022),
    ("gd", "full"): (0.4251, 0.1319),
    ("rmsprop", "full"): (0.0324, 0.0090),
    ("adam", "full"): (0.0049, 0.0009),
}

# Section 3.1: time per Adam iteration on the paper's GPU (ms) and iterations to converge
MS_PER_ITERATION = {"mini": 94.0, "full": 124.0}
ITERATIONS_TO_CONVERGE = {"mini": 10_000, "full": 3_000}
ITERATIONS_TO_CONVERGE_GD_MINI = 32_000
# Section 3.1: final training loss (Adam mini-batch; RMSprop and Adam full batch after 5,000 epochs)
FINAL_LOSS = {("adam", "mini"): 0.0026, ("rmsprop", "full"): 0.0211, ("adam", "full"): 0.0010}
