import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # shared test helpers (strategies, fixtures)


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", help="run tests that need the local model")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="needs --runslow (loads the embedded model or runs minutes)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
