"""A copy of this checkout in a fresh git repository, and commands run in it (the end-to-end and reproduction
tests use it, so neither touches the working tree's data/ or dvc.lock)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

DVC = str(Path(sys.executable).with_name("dvc"))
PHYS_ML = str(Path(sys.executable).with_name("phys-ml"))


def run(cmd, cwd, timeout=1500, env_drop=(), env_set=None):
    bin_dir = str(Path(sys.executable).parent)  # dvc's stages call `phys-ml`, which lives beside this python
    env = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""), "DVC_NO_ANALYTICS": "1",
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    for name in env_drop:
        env.pop(name, None)
    env.update(env_set or {})
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{cmd} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return result


def copy_project(src: Path, dst: Path) -> None:
    """The files git would commit (tracked and untracked-but-not-ignored), nothing generated."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=src,
                            capture_output=True, text=True, check=True).stdout.split("\0")
    for rel in filter(None, listed):
        if (src / rel).is_file():
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src / rel, dst / rel)


def project_repo(src: Path, dst: Path, profile: str | None = None) -> Path:
    """`dst` as a committed git repository holding a copy of the project (with a profile applied)."""
    dst.mkdir()
    copy_project(src, dst)
    run(["git", "init", "-q"], dst)
    if profile:
        run([PHYS_ML, "profile", "apply", profile], dst)
    run(["git", "add", "-A"], dst)
    run(["git", "commit", "-q", "-m", profile or "copy"], dst)
    return dst


def lock_stages(text: str) -> dict:
    return yaml.safe_load(text)["stages"]
