import torch

from vrg_analysis.data import load_digits_split


def test_digits_split_is_deterministic_stratified_and_scaled():
    a, b = load_digits_split(0), load_digits_split(0)
    assert a.sha256 == b.sha256 and torch.equal(a.train_x, b.train_x)
    assert load_digits_split(1).sha256 != a.sha256
    assert a.train_x.shape[1:] == (1, 8, 8) and a.train_x.dtype == torch.float32
    assert len(a.train_x) + len(a.test_x) == 1797
    assert float(a.train_x.min()) == -1.0 and float(a.train_x.max()) == 1.0
    share = torch.bincount(a.test_y, minlength=10) / torch.bincount(
        torch.cat([a.train_y, a.test_y]), minlength=10
    )
    assert torch.all((share - 0.25).abs() < 0.02)
