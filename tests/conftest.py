import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    # Bitwise comparisons need the same thread count everywhere in a test.
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def digits():
    from sgdsmooth.data import load_digits

    return load_digits()
