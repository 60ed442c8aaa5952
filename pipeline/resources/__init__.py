"""Runtime data shipped inside the package (so a wheel works without the checkout): the runner
profiles of `audit --profile` and the example architecture registry of the demo models.

Files are found next to this module; setuptools installs them as package data (pyproject.toml).
"""

from pathlib import Path

RESOURCES_DIR = Path(__file__).resolve().parent
RUNNER_PROFILES_DIR = RESOURCES_DIR / "runners"
EXAMPLE_REGISTRY = RESOURCES_DIR / "architectures.yaml"
