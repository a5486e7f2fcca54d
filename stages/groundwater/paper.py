"""Published numbers of the paper (shared/papers/groundwater-amortized-inference.txt), for comparison only.

Never written into our outputs as results: the report shows them beside ours.
"""

# Table 1: accuracy on the two reference fields. Relative errors as fractions, LPP in nats (706 parameters).
TABLE1 = {
    "PEST-IES": {
        "test1": {"average_relative_error": 0.0841, "relative_error": 0.1008, "lpp": -229.93},
        "test2": {"average_relative_error": 0.1189, "relative_error": 0.1385, "lpp": -295.08},
    },
    "Proposed": {
        "test1": {"average_relative_error": 0.0813, "relative_error": 0.1002, "lpp": -229.44},
        "test2": {"average_relative_error": 0.1162, "relative_error": 0.1314, "lpp": -271.29},
    },
}

# Table 2: computational cost.
TABLE2 = {"proposed_training_h": 4.5, "proposed_inference_s": 2.0, "pest_ies_inference_h": 2.5}

# Sec. 3.4: data set sizes; Sec. 3.5.1: share of the 15 shown parameters with R^2 > 0.8 over 100 test sets.
N_SIMULATIONS, N_TRAIN, N_VALIDATION = 5001, 4800, 100
N_ACTIVE_CELLS, N_OBS_CELLS, N_TIMES, NOISE_SD = 706, 13, 25, 0.01
R2_ABOVE_08_SHARE = 13 / 15
