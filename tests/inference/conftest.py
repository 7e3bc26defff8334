"""Fixtures of the inference tests."""

import pytest

from tests.inference import helpers


@pytest.fixture(scope="session")
def saved_models(tmp_path_factory):
    """Paths of the untrained liver and tumour networks saved as model directories."""
    return helpers.save_real_models(tmp_path_factory.mktemp("models"))
