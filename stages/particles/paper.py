"""Published numbers of the paper (Patni, Sultana, Viswanathan, "2AMM10 Assignment 2 & 3", 2022).

Source: shared/papers/charged-particles-regression.txt. These are the paper's results on the paper's own
(unpublished) data set, shown beside ours in the report; they are never written into our outputs as results.
"""

HORIZONS = (0.5, 1.0, 1.5)

# Task 2, test set, RMSE and R^2 per horizon t = 0.5 / 1.0 / 1.5: the MLP ("model") and the constant-velocity
# baseline ("baseline"), by training-set size. Tables 1 (100), 2 (1,000) and 3 (10,000).
TASK2 = {
    100: {
        "model": {"rmse": (1.8935, 2.0854, 2.3639), "r2": (0.3998, 0.4250, 0.4093)},
        "baseline": {"rmse": (1.9018, 2.1259, 2.4515), "r2": (0.4065, 0.4340, 0.4186)},
    },
    1000: {
        "model": {"rmse": (0.5682, 0.7096, 1.0620), "r2": (0.9386, 0.9193, 0.8566)},
        "baseline": {"rmse": (0.5560, 0.7397, 1.1304), "r2": (0.9453, 0.9215, 0.8603)},
    },
    10000: {
        "model": {"rmse": (0.2797, 0.4309, 0.8198), "r2": (0.9821, 0.9640, 0.9085)},
        "baseline": {"rmse": (0.2713, 0.4769, 0.8909), "r2": (0.9842, 0.9574, 0.9040)},
    },
}
# Sec. 1.4.3 / 1.5: final MLP at t = 0.5.
TASK2_FINAL = {"rmse_t0.5": 0.2772, "r2_t0.5": 0.9826}
# Sec. 1.4.2: best validation RMSE ("loss") per horizon with Adam (lr 1e-4) and SGD (lr 1e-3, momentum 0.9).
TASK2_OPTIMIZERS = {"adam": (0.2697, 0.4278, 0.5862), "sgd": (0.3421, 0.5433, 0.7046)}

# Task 3.1: best validation MSE of the final LSTM (SGD lr 0.01, momentum 0.9, batch 32, epoch 146 of 150),
# Sec. 2.3.4; test MSE Sec. 2.5; Table 4 (Adam lr 0.001 vs SGD lr 0.01).
TASK31_BEST_VAL_MSE = 0.0898
TASK31_TEST_MSE = 0.252
TASK31_TABLE4 = {
    "adam": {"best_val": 0.08861, "worst_val": 0.1229, "test": 0.2506},
    "sgd": {"best_val": 0.08826, "worst_val": 0.099, "test": 0.25108},
}

# Task 3.2: test MSE of the GRU roll-out and of linear extrapolation, Sec. 3.4.2 and 3.5; best validation MSE
# of the GRU, Sec. 3.3.4; LSTM validation loss stagnating, Sec. 3.4.2.
TASK32_GRU_TEST_MSE = 1.819
TASK32_LINEAR_TEST_MSE = 1.009
TASK32_GRU_BEST_VAL_MSE = 1.7389
TASK32_LSTM_VAL_MSE = 3.329

# Note for the report: charges uniform in [-1, 0] have variance 1/12 = 0.0833, the MSE of always predicting
# -0.5. The paper's 0.0898 is at that level.
CHARGE_PRIOR_VARIANCE = 1.0 / 12.0
