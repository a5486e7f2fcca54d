"""The single-layer Freyberg model (GMDSI "freyberg6" collapsed to one layer), built with flopy.

Paper section 3.1 (model of Freyberg 1988): 40 x 20 cells of 250 m, 706 active cells, heads observed at 13 cells
over 25 stress periods. Constants below restate the design note (`shared/design/groundwater.md`); units m and d.

`write_model(ws, ...)` writes MODFLOW 6 input into a folder. The hydraulic conductivity is read from the
external text file `k.txt` (full 40 x 20 grid), so a run with a new ln K field rewrites only that file
(`write_k`). Heads at the 13 observation cells come from the OBS package (`heads.csv`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

NROW, NCOL, DELR = 40, 20, 250.0
N_ACTIVE = 706
N_PERIODS = 25
K_FILE = "k.txt"
OBS_FILE = "heads.csv"
SIM_NAME = "freyberg"

# Active columns per row (1-based, inclusive ranges), row 1 in the north.
_ACTIVE_RANGES: dict[int, list[tuple[int, int]]] = {
    **{r: [(1, 20)] for r in range(1, 9)},
    9: [(1, 4), (8, 20)],
    **{r: [(1, 4), (9, 20)] for r in range(10, 22)},
    22: [(1, 4), (7, 20)],
    23: [(1, 5), (7, 20)],
    **{r: [(1, 20)] for r in range(24, 33)},
    33: [(2, 20)],
    34: [(3, 20)],
    35: [(4, 20)],
    36: [(5, 19)],
    37: [(5, 19)],
    38: [(6, 18)],
    39: [(6, 17)],
    40: [(6, 16)],
}

# (row, col), 1-based.
WELLS = [(10, 17), (12, 14), (21, 15), (27, 11), (30, 7), (35, 13)]
OBS_CELLS = [(3, 16), (3, 10), (4, 9), (10, 2), (14, 11), (16, 17), (22, 11), (23, 16), (25, 5), (27, 7),
             (30, 16), (34, 8), (35, 11)]
GHB_ROW, GHB_COLS, GHB_STAGE, GHB_COND = 40, range(6, 16), 33.5, 70.0
STREAM_COL = 16
PERIOD_DAYS = [1.0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]

# Per stress period: recharge (m/d), rate of each of the six wells (m^3/d), stream inflow to reach 1 (m^3/d).
RECHARGE = np.array([
    5.8752e-05, 9.0887e-05, 9.6929e-05, 9.1856e-05, 7.7144e-05, 5.7077e-05, 3.7498e-05, 2.4107e-05, 2.0803e-05,
    2.8549e-05, 4.5088e-05, 6.5606e-05, 8.4128e-05, 9.5262e-05, 9.5765e-05, 8.5492e-05, 6.7433e-05, 4.6846e-05,
    2.9726e-05, 2.1057e-05, 2.3364e-05, 3.5974e-05, 5.5216e-05, 7.5488e-05, 9.0887e-05])
WELL_RATE = np.array([
    -175.0000, -62.7215, -69.5912, -107.1519, -164.4673, -224.8494, -270.7174, -291.6032, -288.7161, -273.6051,
    -229.7841, -170.0122, -111.6925, -71.8055, -61.9647, -85.0354, -134.3004, -195.4154, -250.5863, -283.7494,
    -285.2489, -254.6482, -200.8570, -139.5373, -88.5429])
STREAM_INFLOW = np.array([
    100.000, 154.696, 164.981, 156.346, 131.305, 97.150, 63.824, 41.032, 35.408, 48.592, 76.743, 111.666, 143.192,
    162.143, 162.999, 145.513, 114.775, 79.736, 50.596, 35.841, 39.766, 61.230, 93.981, 128.485, 154.696])

# Storage (sy, ss) and stream reach properties.
SY, SS = 0.01, 1e-6
REACH_WIDTH, REACH_GRADIENT, REACH_TOP_START, REACH_TOP_END = 5.0, 5e-5, 34.0, 33.51
BED_THICKNESS, BED_K, MANNING = 1.0, 0.1, 0.03


def idomain() -> np.ndarray:
    """(40, 20) int array: 1 active, 0 inactive."""
    dom = np.zeros((NROW, NCOL), dtype=np.int32)
    for row, ranges in _ACTIVE_RANGES.items():
        for c0, c1 in ranges:
            dom[row - 1, c0 - 1:c1] = 1
    return dom


def active_index() -> np.ndarray:
    """Flat (row-major) indices of the 706 active cells: the order of the parameter vector y = ln K."""
    return np.flatnonzero(idomain().ravel())


def cell_centres() -> tuple[np.ndarray, np.ndarray]:
    """(x, y) of every cell centre in metres, x from the west edge and y from the south edge; shapes (40, 20)."""
    x = (np.arange(NCOL) + 0.5) * DELR
    y = NROW * DELR - (np.arange(NROW) + 0.5) * DELR
    return np.meshgrid(x, y)


def active_centres() -> np.ndarray:
    """(706, 2) coordinates of the active cell centres, in parameter order."""
    x, y = cell_centres()
    idx = active_index()
    return np.stack([x.ravel()[idx], y.ravel()[idx]], axis=1)


def elevations() -> tuple[np.ndarray, np.ndarray]:
    """Model top and bottom (40, 20): the quadratic fits of the design note (top ~34-42 m, bottom ~0-14 m)."""
    x, y = cell_centres()
    xn, yn = x / 5000.0, y / 10000.0
    top = 36.7229 + 10.5221 * yn - 3.6165 * yn**2 - 6.9157 * xn - 6.3982 * xn * yn + 5.8646 * xn**2
    bot = 8.367 + 3.5918 * yn + 1.1808 * yn**2 - 20.3112 * xn + 0.2346 * xn * yn + 11.9965 * xn**2
    return top, bot


def obs_active_positions() -> np.ndarray:
    """Positions of the 13 observation cells inside the 706-vector of active cells."""
    lookup = {flat: i for i, flat in enumerate(active_index())}
    return np.array([lookup[(r - 1) * NCOL + (c - 1)] for r, c in OBS_CELLS])


@dataclass(frozen=True)
class Scenario:
    """Variations of the forcing, for tests and what-if runs (the paper's model is the default)."""

    recharge_scale: float = 1.0
    pumping_scale: float = 1.0
    n_periods: int = N_PERIODS  # 1 gives the steady-state first period only
    stream: str = "sfr"  # "sfr" (MODFLOW 6 streamflow routing) or "riv" (fixed-stage river, a simplification)
    dvclose: float = 1e-4  # IMS outer_dvclose (m); derivative runs need a much tighter one (`glm`)


def full_k(lnk: np.ndarray, fill: float = 1.0) -> np.ndarray:
    """Expand 706 ln K values to the (40, 20) K grid (inactive cells get ``fill``)."""
    lnk = np.asarray(lnk, dtype=np.float64)
    if lnk.shape != (N_ACTIVE,):
        raise ValueError(f"expected {N_ACTIVE} ln K values, got shape {lnk.shape}")
    k = np.full(NROW * NCOL, fill)
    k[active_index()] = np.exp(lnk)
    return k.reshape(NROW, NCOL)


def write_k(ws: Path, lnk: np.ndarray) -> None:
    """Rewrite only the conductivity input of a model folder (K = exp(y), Eq. 1 parameterisation)."""
    np.savetxt(Path(ws) / K_FILE, full_k(lnk), fmt="%.17g")


def _stream_reaches() -> list[tuple[int, int, float]]:
    """(row0, col0, reach top) for the 40 reaches in column 16, top falling linearly 34.0 -> 33.51 m."""
    tops = np.linspace(REACH_TOP_START, REACH_TOP_END, NROW)
    return [(r, STREAM_COL - 1, float(tops[r])) for r in range(NROW)]


def write_model(ws: Path, lnk: np.ndarray, scenario: Scenario = Scenario()) -> None:
    """Write the MODFLOW 6 simulation into ``ws`` (created if needed) with K = exp(lnk)."""
    import flopy  # imported here: only model writing needs it

    ws = Path(ws)
    ws.mkdir(parents=True, exist_ok=True)
    nper = scenario.n_periods
    if not 1 <= nper <= N_PERIODS:
        raise ValueError(f"n_periods must be in 1..{N_PERIODS}, got {nper}")
    sim = flopy.mf6.MFSimulation(sim_name=SIM_NAME, sim_ws=str(ws), exe_name="mf6", verbosity_level=0)
    flopy.mf6.ModflowTdis(sim, time_units="days", nper=nper,
                          perioddata=[(PERIOD_DAYS[p], 1, 1.0) for p in range(nper)])
    flopy.mf6.ModflowIms(sim, complexity="complex", outer_dvclose=scenario.dvclose,
                         inner_dvclose=min(1e-6, scenario.dvclose / 10),
                         outer_maximum=200, inner_maximum=100, linear_acceleration="bicgstab",
                         under_relaxation="dbd", backtracking_number=0)
    gwf = flopy.mf6.ModflowGwf(sim, modelname=SIM_NAME, newtonoptions="under_relaxation", save_flows=False)
    top, bot = elevations()
    flopy.mf6.ModflowGwfdis(gwf, nlay=1, nrow=NROW, ncol=NCOL, delr=DELR, delc=DELR, top=top, botm=[bot],
                            idomain=[idomain()])
    # Convertible cells (icelltype 1); K from the external file that each run rewrites.
    flopy.mf6.ModflowGwfnpf(gwf, icelltype=1, k={"filename": K_FILE, "factor": 1.0, "iprn": -1})
    write_k(ws, lnk)
    flopy.mf6.ModflowGwfic(gwf, strt=top)
    flopy.mf6.ModflowGwfsto(gwf, iconvert=1, sy=SY, ss=SS, steady_state={0: True},
                            transient={p: True for p in range(1, nper)})
    flopy.mf6.ModflowGwfghb(gwf, stress_period_data={0: [((0, GHB_ROW - 1, c - 1), GHB_STAGE, GHB_COND)
                                                         for c in GHB_COLS]})
    flopy.mf6.ModflowGwfwel(gwf, stress_period_data={
        p: [((0, r - 1, c - 1), float(WELL_RATE[p] * scenario.pumping_scale)) for r, c in WELLS]
        for p in range(nper)})
    flopy.mf6.ModflowGwfrcha(gwf, recharge={p: float(RECHARGE[p] * scenario.recharge_scale) for p in range(nper)})
    reaches = _stream_reaches()
    if scenario.stream == "sfr":
        n = len(reaches)
        packagedata = [(i, (0, r, c), DELR, REACH_WIDTH, REACH_GRADIENT, rtp, BED_THICKNESS, BED_K, MANNING,
                        (1 if i in (0, n - 1) else 2), 1.0, 0) for i, (r, c, rtp) in enumerate(reaches)]
        # Reach i receives from i-1 (positive id) and gives to i+1 (negative id).
        connections = [[i] + ([i - 1] if i > 0 else []) + ([-(i + 1)] if i < n - 1 else []) for i in range(n)]
        flopy.mf6.ModflowGwfsfr(gwf, nreaches=n, packagedata=packagedata, connectiondata=connections,
                                perioddata={p: [(0, "inflow", float(STREAM_INFLOW[p]))] for p in range(nper)},
                                unit_conversion=86400.0)
    elif scenario.stream == "riv":
        cond = BED_K * DELR * REACH_WIDTH / BED_THICKNESS
        flopy.mf6.ModflowGwfriv(gwf, stress_period_data={0: [((0, r, c), rtp + 0.5, cond, rtp - BED_THICKNESS)
                                                             for r, c, rtp in reaches]})
    else:
        raise ValueError(f"stream must be 'sfr' or 'riv', got {scenario.stream!r}")
    flopy.mf6.ModflowUtlobs(gwf, digits=15, continuous={
        OBS_FILE: [(f"h{i + 1:02d}", "head", (0, r - 1, c - 1)) for i, (r, c) in enumerate(OBS_CELLS)]})
    flopy.mf6.ModflowGwfoc(gwf, printrecord=[("budget", "last")])
    sim.write_simulation(silent=True)


def read_heads(ws: Path, n_periods: int = N_PERIODS) -> np.ndarray:
    """(n_periods, 13) simulated heads at the observation cells, from the OBS csv of a finished run."""
    path = Path(ws) / OBS_FILE
    data = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)
    if data.shape != (n_periods, 1 + len(OBS_CELLS)):
        raise ValueError(f"{path.name}: expected {n_periods} x {1 + len(OBS_CELLS)} values, got {data.shape}")
    return data[:, 1:]


def read_budget_discrepancy(ws: Path) -> list[float]:
    """Percent discrepancy of the volumetric budget at each printed time step, from the model's listing file."""
    text = (Path(ws) / f"{SIM_NAME}.lst").read_text(errors="replace")
    return [float(line.split()[-1]) for line in text.splitlines() if "PERCENT DISCREPANCY" in line]
