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


@pytest.fixture
def float64():
    """Whole runs in float64, to compare two ways of computing the same run tightly: in
    float32 their rounding differs by 1e-7 and training amplifies it (a CBS stop moves by a
    step within 100 steps)."""
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(torch.float32)
