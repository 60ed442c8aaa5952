"""Where the checkout is, for tests that run its commands or read its files (tests sit one folder
below tests/, mirroring the package they test)."""

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
