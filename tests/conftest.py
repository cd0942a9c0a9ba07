"""Shared pytest setup for the numerical tests.

The test machines share a couple of CPU cores between workers, so torch is limited to one thread, and
every test starts and ends with the non-finite input check of the pooling rules switched on (a test
that turns it off cannot leak that into the next one). ``fixture_data_root`` points the loaders at tiny
MNIST-SVHN-Text, CelebA and CUB fixtures (:mod:`data_fixtures`).
"""

import pytest
import torch
from data_fixtures import make_celeba_fixture, make_cub_fixture, make_mst_fixture

from poolvae import datasets as D

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _pool_checks_on():
    """Run every test with ``poolvae.aggregators`` input checks on, and restore them afterwards."""
    from poolvae import aggregators

    aggregators.set_checks(True)
    yield
    aggregators.set_checks(True)


@pytest.fixture(scope="session")
def fixture_root(tmp_path_factory):
    """One data folder with the three fixtures, built once per session."""
    root = tmp_path_factory.mktemp("data")
    make_mst_fixture(root)
    make_celeba_fixture(root)
    make_cub_fixture(root)
    return root


@pytest.fixture
def fixture_data_root(fixture_root, monkeypatch):
    """Point the loaders' default data folder at the fixtures; a fixture's SVHN file cannot pass the MD5 check."""
    monkeypatch.setattr(D, "DATA_DIR", fixture_root)
    load_svhn = D._load_svhn
    monkeypatch.setattr(D, "_load_svhn", lambda root, split, check_md5: load_svhn(root, split, False))
    return fixture_root
