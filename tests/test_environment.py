"""The environment is the locked one: every package of uv.lock installed at its locked version."""

import subprocess
import sys
from pathlib import Path

from phys_ml import environment

PHYS_ML = str(Path(sys.executable).with_name("phys-ml"))


def test_every_locked_package_is_installed_at_its_locked_version(project_root):
    locked = environment.locked_versions(project_root / "uv.lock")
    assert {"numpy", "pyarrow", "torch", "tensorflow", "flopy"} <= set(locked)
    assert "phys-ml" not in locked  # the project itself is installed editable, not pinned
    moved = environment.mismatches(locked)
    assert not moved, ("installed versions differ from uv.lock (run `make install`): "
                       + ", ".join(f"{name} {inst} (locked {pin})" for name, (pin, inst) in moved.items()))


def test_torch_is_the_locked_cpu_build(project_root):
    assert environment.locked_versions(project_root / "uv.lock")["torch"].endswith("+cpu")


def test_info_names_a_version_that_is_not_the_locked_one(tmp_path, project_root):
    text = (project_root / "uv.lock").read_text()
    installed = environment.installed_version("pyarrow")
    marker = f'name = "pyarrow"\nversion = "{installed}"'
    assert marker in text
    other_lock = tmp_path / "uv.lock"
    other_lock.write_text(text.replace(marker, 'name = "pyarrow"\nversion = "1.0.0"'))

    same = subprocess.run([PHYS_ML, "info"], capture_output=True, text=True, timeout=120)
    other = subprocess.run([PHYS_ML, "info", "--lock", str(other_lock)], capture_output=True, text=True, timeout=120)
    assert same.returncode == 0 and other.returncode == 0, same.stderr + other.stderr
    line = next(ln for ln in same.stdout.splitlines() if ln.startswith("pyarrow "))
    assert "(= uv.lock)" in line
    line = next(ln for ln in other.stdout.splitlines() if ln.startswith("pyarrow "))
    assert "uv.lock pins 1.0.0" in line
    assert "1 installed version(s) differ: pyarrow" in other.stdout


INTEL = """processor\t: 0
vendor_id\t: GenuineIntel
cpu family\t: 6
model\t\t: 143
flags\t\t: fpu sse sse2 sse4_2 avx fma avx2 avx512f avx512bw rdrand

processor\t: 1
vendor_id\t: GenuineIntel
"""
AMD = INTEL.replace("GenuineIntel", "AuthenticAMD").replace("avx512f avx512bw ", "")


def test_cpu_kind_names_what_the_numerical_libraries_dispatch_on():
    intel, amd = environment.cpu_kind(INTEL), environment.cpu_kind(AMD)
    assert intel["vendor"] == "GenuineIntel" and intel["family"] == "6" and intel["model"] == "143"
    assert intel["features"] == ["sse4_2", "avx", "fma", "avx2", "avx512f", "avx512bw"]  # rdrand decides nothing
    assert amd["features"] == ["sse4_2", "avx", "fma", "avx2"] and amd != intel
    assert environment.cpu_kind(INTEL) == intel  # the same machine, the same kind
    assert "GenuineIntel family 6 model 143" in environment.describe_cpu_kind(intel)


def test_the_recorded_cpu_kind_is_read_from_machine_json(tmp_path):
    assert environment.recorded_cpu_kind(tmp_path) is None
    (tmp_path / environment.MACHINE_FILE).write_text('{"cpu": {"machine": "x86_64"}}')
    assert environment.recorded_cpu_kind(tmp_path) == {"machine": "x86_64"}
    (tmp_path / environment.MACHINE_FILE).write_text("not json")
    assert environment.recorded_cpu_kind(tmp_path) is None
