"""phys-ml: DVC pipelines reproducing physics-informed machine-learning studies.

The command-line interface lives in ``phys_ml.cli`` (folder ``cli/``), the studies in ``phys_ml.stages``
(folder ``stages/``).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("phys-ml")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"
