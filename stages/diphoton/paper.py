"""Published numbers of Gendreau-Distler, Le Pottier and Wang, "Transforming Simulation to Data Without Pairing".

Shown beside ours in the report; never used as results.
"""

# Table 1: Pearson correlation coefficients; columns pT1,pT2 | eta1,eta2 | phi1,phi2 | m_gg,pT1 | m_gg,pT2 |
# mean |r| of all other pairs. Rows: ATLAS data, MC, and the four CNF models.
TABLE1_COLUMNS = ("pT1,pT2", "eta1,eta2", "phi1,phi2", "m_gg,pT1", "m_gg,pT2", "others")
TABLE1 = {
    "data": (0.539, 0.192, -0.425, 0.566, 0.589, 7.06e-4),
    "mc": (0.103, 0.459, -0.394, 0.356, 0.417, 3.17e-4),
    "log": (0.542, 0.189, -0.422, 0.559, 0.583, 7.43e-4),
    "kl": (0.542, 0.197, -0.421, 0.591, 0.601, 1.74e-1),
    "mmd": (0.535, 0.189, -0.425, 0.572, 0.580, 2.62e-3),
    "mdmm": (0.550, 0.203, -0.422, 0.558, 0.584, 4.20e-3),
}

# Sec. 2.4: MDMM constraint level and the data-vs-data MMD it was set against (paper's eq. 2 form).
MDMM_EPSILON = 2.01
DATA_VS_DATA_MMD = 1.98

# Sec. 3 / Fig. 3 (qualitative, no numbers printed): the MDMM model's classifier AUC is below the MC's and
# comparable to the MMD-only model's.
