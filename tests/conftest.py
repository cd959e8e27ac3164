import os

import gin
import numpy as np
import pytest
import torch

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
torch.set_num_threads(2)


@pytest.fixture(autouse=True)
def _fresh_gin_and_seeds():
    """gin state is process-global: every test starts from an empty config and fixed seeds."""
    gin.clear_config()
    np.random.seed(0)
    torch.manual_seed(0)
    yield
    gin.clear_config()
