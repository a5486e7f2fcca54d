"""The authors' published numbers (two-spiral benchmark), shown beside ours in the report. Never used as results.

Source: Leimkuhler, Matthews, Vlaar, "Partitioned integrators for thermodynamic parameterization of neural
networks", Foundations of Data Science 1(4), 2019, and the authors' stored notebook results, as gathered in
shared/design/thermodynamic-optimizers.md (test accuracy in %, 4-turn spirals, 2-100-1 network, batch 25).
"""

from __future__ import annotations

SOURCE = "Leimkuhler, Matthews & Vlaar (2019), two-spiral experiment; authors' stored notebook results"

# One run each, test accuracy (%) at epochs 500 / 1,000 / 2,000 / 4,000.
SINGLE_RUN_ACCURACY = {
    "adam": {500: 63.1, 1000: 67.3, 2000: 69.8, 4000: 68.6},
    "adlala": {500: 79.8, 1000: 84.4, 2000: 89.2, 4000: 92.9},
}

# Ten-run averages at 4,000 epochs: test accuracy (%) and final test loss (mean, sd).
TEN_RUN_ACCURACY_4000 = {"adam": 78.0, "adlala": 88.0}  # "about 78 %" and "about 88 %"
TEN_RUN_TEST_LOSS_4000 = {"adam": (0.580, 0.063), "adlala": (0.433, 0.075)}

# Other single runs at 4,000 epochs, test accuracy (%).
OTHER_RUNS_4000 = {"adam": (63.7, 69.0, 78.5), "adlala": (91.0, 89.8, 90.3)}

# The paper's settings (the defaults of our params).
SETTINGS = {"h": 0.25, "tau1": 1e-4, "tau2": 1e-4, "gamma": 0.1, "sigma_A": 0.01, "eps": 0.05, "xi_init": 0.1,
            "adam_lr": 0.005, "batch_size": 25, "epochs": 4000, "runs": 10}

TABLE_EPOCHS = (500, 1000, 2000, 4000)
