"""The installed versions against `uv.lock`, the project's lock of exact versions (`make lock` writes it).

The committed `dvc.lock` holds the bytes that the locked versions produce; a different numpy, pyarrow (which
writes its version into every Parquet file), torch or TensorFlow moves them. `phys-ml info` and the
environment tests use these functions to say whether this environment is the locked one.

The versions are not all: MKL (inside torch) and OpenBLAS (inside numpy and scipy) choose their kernels by the
CPU they run on, so the same versions give other last bits on another kind of CPU (seen here: the particle
simulations and the rre solver moved between an AVX-512 Xeon and the machine that wrote an earlier dvc.lock,
and `MKL_CBWR=AVX2` moves them again). `cpu_kind` names what those libraries dispatch on; the report stage
records it in reports/machine.json beside the dvc.lock it describes.
"""

from __future__ import annotations

import json
import platform
import re
import tomllib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

# The distributions whose versions decide the bytes of the pipeline's artifacts (mf6 is pinned by checksum in
# stages/groundwater/mf6.py, not by the lock).
BYTE_DECIDING = ("numpy", "scipy", "pyarrow", "torch", "zuko", "tensorflow", "tensorflow-probability", "flopy")


def default_lock_path() -> Path:
    """`uv.lock` at the root of the checkout this package is installed from (an editable install)."""
    return Path(__file__).resolve().parents[1] / "uv.lock"


def normalize(name: str) -> str:
    """PEP 503 name normalization: `tf_keras` and `TF-Keras` are the same distribution."""
    return re.sub(r"[-_.]+", "-", name).lower()


def locked_versions(lock_path: Path) -> dict[str, str]:
    """Every package the lock pins, by normalized name, except the project itself (installed editable)."""
    with open(lock_path, "rb") as handle:
        lock = tomllib.load(handle)
    return {normalize(p["name"]): p["version"] for p in lock.get("package", [])
            if "version" in p and not p.get("source", {}).get("editable")}


def installed_version(dist: str) -> str | None:
    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def mismatches(locked: dict[str, str]) -> dict[str, tuple[str, str | None]]:
    """Locked packages whose installed version differs: name -> (locked, installed or None)."""
    found = {name: (pinned, installed_version(name)) for name, pinned in locked.items()}
    return {name: pair for name, pair in sorted(found.items()) if pair[0] != pair[1]}


def version_rows(locked: dict[str, str] | None) -> list[tuple[str, str]]:
    """(distribution, "installed version, and whether it is the locked one") for the byte-deciding packages."""
    rows = []
    for dist in BYTE_DECIDING:
        installed = installed_version(dist) or "not installed"
        if locked is None:
            verdict = "no uv.lock to compare"
        elif normalize(dist) not in locked:
            verdict = "not in uv.lock"
        elif locked[normalize(dist)] == installed:
            verdict = "= uv.lock"
        else:
            verdict = f"uv.lock pins {locked[normalize(dist)]}: outputs may differ from dvc.lock"
        rows.append((dist, f"{installed}  ({verdict})"))
    return rows


# CPU features that decide which kernels MKL, OpenBLAS and torch's vectorized code run (/proc/cpuinfo names).
KERNEL_FLAGS = ("sse4_2", "avx", "fma", "avx2", "avx512f", "avx512dq", "avx512bw", "avx512vl", "avx512_vnni",
                "avx512_bf16", "avx512_fp16", "amx_tile")
MACHINE_FILE = "machine.json"


def cpu_kind(cpuinfo: str | None = None) -> dict:
    """What the numerical libraries dispatch on: architecture, vendor, family / model and the kernel-deciding
    features of the first CPU in /proc/cpuinfo (``cpuinfo``: its text, for tests). Two machines with the same
    kind and the same versions give the same bytes."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            cpuinfo = ""
    first = {}
    for line in cpuinfo.split("\n\n")[0].splitlines():
        key, _, value = line.partition(":")
        first[key.strip()] = value.strip()
    flags = set(first.get("flags", first.get("Features", "")).split())
    return {"machine": platform.machine(), "vendor": first.get("vendor_id", first.get("CPU implementer", "")),
            "family": first.get("cpu family", ""), "model": first.get("model", first.get("CPU part", "")),
            "features": [f for f in KERNEL_FLAGS if f in flags]}


def describe_cpu_kind(kind: dict) -> str:
    features = ", ".join(kind.get("features", [])) or "none of the listed features"
    return (f"{kind.get('machine', '?')} {kind.get('vendor', '?')} family {kind.get('family', '?')} "
            f"model {kind.get('model', '?')} ({features})")


def recorded_cpu_kind(reports_dir: Path) -> dict | None:
    """The CPU kind the committed results were written on (reports/machine.json), None when not recorded."""
    try:
        return json.loads((reports_dir / MACHINE_FILE).read_text())["cpu"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
