"""Shared pytest setup for the numerical tests.

The test machines share a couple of CPU cores between workers, so torch is limited to one thread, and
every test starts and ends with the non-finite input check of the pooling rules switched on (a test
that turns it off cannot leak that into the next one).
"""

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _pool_checks_on():
    """Run every test with ``poolvae.aggregators`` input checks on, and restore them afterwards."""
    from poolvae import aggregators

    aggregators.set_checks(True)
    yield
    aggregators.set_checks(True)
