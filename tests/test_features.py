"""The digits feature extractor, the domain FID and its reference statistics, cross-checked with
torchmetrics' ``FrechetInceptionDistance(feature=<module>)`` and the ``scipy.linalg.sqrtm``
formula; the Inception FID's error path (no weights can be downloaded here)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.linalg import sqrtm

from vrg_analysis.data import load_digits_split
from vrg_analysis.evaluation.features import (
    DEFAULT_MODEL_DIR,
    DEFAULT_REFERENCE_DIR,
    DomainClassifier,
    ReferenceStatistics,
    TorchmetricsFeatureWrapper,
    classifier_accuracy,
    compute_reference_statistics,
    domain_fid,
    extract_features,
    inception_fid,
    load_domain_classifier,
    reference_statistics,
)
from vrg_analysis.evaluation.metrics import frechet_distance, gaussian_moments
from vrg_analysis.io import sha256_file
from vrg_analysis.training.classifier import ClassifierConfig, train_domain_classifier

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def split():
    return load_digits_split(seed=0)


@pytest.fixture(scope="module")
def model() -> DomainClassifier:
    return load_domain_classifier("digits")


@pytest.fixture(scope="module")
def ref() -> ReferenceStatistics:
    return reference_statistics("digits")


def _fd_sqrtm(mu1, s1, mu2, s2) -> float:
    """pytorch-fid's ``calculate_frechet_distance``: tr sqrtm(S1 S2) with scipy (reference)."""
    covmean = np.real(sqrtm(s1 @ s2))
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * np.trace(covmean))


# ===================================================================== the classifier
def test_shipped_classifier_accuracy(model, split) -> None:
    card = model.card
    acc = classifier_accuracy(model, split.test_x, split.test_y)
    assert acc == pytest.approx(card["held_out_accuracy"], abs=1e-12)
    assert acc >= 0.97  # the goal
    assert card["data"]["split_sha256"] == split.sha256
    assert card["sha256"] == sha256_file(DEFAULT_MODEL_DIR / "digits-classifier.pt")
    assert model.num_features == 64 and not model.training


def test_training_is_deterministic_and_round_trips(tmp_path: Path, split) -> None:
    cfg = ClassifierConfig(width=8, num_features=16, steps=25, batch_size=32)
    state = torch.get_rng_state()
    m1, card1 = train_domain_classifier(
        "digits", seed=3, out_dir=tmp_path / "a", config=cfg, split=split
    )
    assert torch.equal(torch.get_rng_state(), state)  # the global generator is left alone
    _, card2 = train_domain_classifier(
        "digits", seed=3, out_dir=tmp_path / "b", config=cfg, split=split
    )
    _, card3 = train_domain_classifier("digits", seed=4, out_dir=None, config=cfg, split=split)
    assert card1["sha256"] == card2["sha256"]  # same seed: byte-identical weights file
    assert card3["final_loss"] != card1["final_loss"]
    for key in ("architecture", "config", "seed", "data", "held_out_accuracy", "wall_time_s"):
        assert key in card1
    assert card1["config"] == cfg.to_dict()
    loaded = load_domain_classifier("digits", tmp_path / "a")
    x = split.test_x[:20]
    assert torch.equal(loaded(x), m1.eval()(x))
    assert loaded.card == json.loads((tmp_path / "a" / "digits-classifier.json").read_text())


def test_tampered_weights_are_refused(tmp_path: Path) -> None:
    shutil.copytree(DEFAULT_MODEL_DIR, tmp_path, dirs_exist_ok=True)
    pt = tmp_path / "digits-classifier.pt"
    data = bytearray(pt.read_bytes())
    data[-100] ^= 0xFF
    pt.write_bytes(bytes(data))
    card = json.loads((tmp_path / "digits-classifier.json").read_text())
    with pytest.raises(ValueError, match=card["sha256"]) as err:
        load_domain_classifier("digits", tmp_path)
    assert sha256_file(pt) in str(err.value)


def test_missing_card(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="card"):
        load_domain_classifier("digits", tmp_path)


def test_classifier_bad_input(model) -> None:
    with pytest.raises(ValueError, match=r"\[n, 1, 8, 8\]"):
        model.features(torch.zeros(2, 1, 28, 28))
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        extract_features(torch.full((2, 1, 8, 8), 16.0), model)  # raw 0..16 digits
    with pytest.raises(ValueError, match="num_features"):
        DomainClassifier(num_features=0)


def test_features_batch_and_order_invariant(model, split) -> None:
    x = split.test_x[:100]
    a = extract_features(x, model, batch_size=100)
    b = extract_features(x, model, batch_size=7)
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    perm = torch.randperm(100, generator=torch.Generator().manual_seed(0))
    np.testing.assert_allclose(extract_features(x[perm], model), a[perm.numpy()], atol=1e-6)


# ===================================================================== reference statistics
def test_reference_statistics_reproduce(model, ref, split) -> None:
    assert ref.n == split.test_x.shape[0] == 450
    assert ref.classifier_sha256 == model.card["sha256"]
    assert ref.split_sha256 == split.sha256
    fresh = compute_reference_statistics(model, out_dir=None, floor_draws=2)
    np.testing.assert_allclose(fresh.mean, ref.mean, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(fresh.cov, ref.cov, rtol=1e-6, atol=1e-7)
    assert fresh.floor_runs == pytest.approx(ref.floor_runs[:2], rel=1e-6)
    # the floor: positive, and small next to the FID of anything that is not a digit
    assert 0.0 < ref.floor < 10.0
    assert ref.floor == pytest.approx(float(np.median(ref.floor_runs)))


def test_tampered_reference_is_refused(tmp_path: Path) -> None:
    shutil.copytree(DEFAULT_REFERENCE_DIR, tmp_path, dirs_exist_ok=True)
    npz = tmp_path / "digits-heldout-features.npz"
    with np.load(npz) as z:
        mean, cov, n = z["mean"] + 1e-3, z["cov"], z["n"]
    np.savez(npz, mean=mean, cov=cov, n=n)
    with pytest.raises(ValueError, match="sidecar says"):
        reference_statistics("digits", directory=tmp_path)


def test_reference_made_with_another_classifier(tmp_path: Path) -> None:
    shutil.copytree(DEFAULT_REFERENCE_DIR, tmp_path, dirs_exist_ok=True)
    side = tmp_path / "digits-heldout-features.json"
    doc = json.loads(side.read_text())
    doc["classifier_sha256"] = "0" * 64
    side.write_text(json.dumps(doc))
    with pytest.raises(ValueError, match="0" * 64):
        reference_statistics("digits", directory=tmp_path)


def test_unknown_reference() -> None:
    with pytest.raises(ValueError, match="known: \\['digits', 'fashion-mnist'\\]"):
        reference_statistics("cifar10")
    with pytest.raises(ValueError, match="cifar10"):
        load_domain_classifier("cifar10")


def test_a_classifier_card_for_another_image_size_is_refused(tmp_path: Path) -> None:
    shutil.copytree(DEFAULT_MODEL_DIR, tmp_path, dirs_exist_ok=True)
    card = json.loads((tmp_path / "digits-classifier.json").read_text())
    card["architecture"]["image_size"] = 28
    (tmp_path / "digits-classifier.json").write_text(json.dumps(card))
    with pytest.raises(ValueError, match=r"digits-classifier.json: the classifier takes 28x28"):
        load_domain_classifier("digits", tmp_path)


def test_the_28x28_classifier_shapes_and_the_floor_at_a_sample_size() -> None:
    net = DomainClassifier(width=4, num_features=8, image_size=28)
    assert net.features(torch.zeros(3, 1, 28, 28)).shape == (3, 8)
    with pytest.raises(ValueError, match=r"\[n, 1, 28, 28\]"):
        net.features(torch.zeros(3, 1, 8, 8))
    with pytest.raises(ValueError, match="image_size"):
        DomainClassifier(image_size=32)
    stats = ReferenceStatistics("x", np.zeros(2), np.eye(2), 100, "a", "b", 1.5, (), {20: 4.0})
    assert stats.floor_at(100) == 1.5 and stats.floor_at(20) == 4.0 and stats.floor_at(50) is None


# ===================================================================== domain FID
def test_domain_fid_of_reference_data_is_zero(model, ref, split) -> None:
    assert domain_fid(split.test_x, ref, model) == pytest.approx(0.0, abs=1e-7)


def test_domain_fid_orders_sample_quality(model, ref, split) -> None:
    gen = torch.Generator().manual_seed(0)
    real = split.train_x[torch.randperm(split.train_x.shape[0], generator=gen)[:450]]
    noisy = (real + 0.5 * torch.randn(real.shape, generator=gen)).clamp(-1, 1)
    noise = torch.rand(450, 1, 8, 8, generator=gen) * 2 - 1
    one_class = split.train_x[split.train_y == 3]  # mode collapse onto one digit
    fids = [domain_fid(x, ref, model) for x in (real, noisy, one_class, noise)]
    assert fids[0] < 2 * ref.floor  # real digits sit at the floor
    assert fids[0] < fids[1] < fids[3]
    assert fids[2] > 10 * ref.floor


def test_domain_fid_refuses_other_extractor(tmp_path: Path, ref, split) -> None:
    cfg = ClassifierConfig(width=4, num_features=64, steps=2)
    other, _ = train_domain_classifier("digits", 0, tmp_path, cfg, split)
    other = load_domain_classifier("digits", tmp_path)
    with pytest.raises(ValueError, match=ref.classifier_sha256):
        domain_fid(split.test_x, ref, other)


# ===================================================================== cross-checks
def _torchmetrics_fid(model, real, fake, *, normalize: bool) -> float:
    from torchmetrics.image.fid import FrechetInceptionDistance

    metric = FrechetInceptionDistance(
        feature=TorchmetricsFeatureWrapper(model), normalize=normalize
    )
    for i in range(0, real.shape[0], 128):  # several updates: batch accumulation is exercised
        metric.update(real[i : i + 128], real=True)
    for i in range(0, fake.shape[0], 100):
        metric.update(fake[i : i + 100], real=False)
    value = metric.compute()
    assert value.dtype == torch.float64  # the wrapper's float64 features keep the result float64
    return float(value)


def test_matches_torchmetrics_and_sqrtm(model, split) -> None:
    # Same images, three implementations of (F1): ours (two symmetric eigendecompositions),
    # torchmetrics (eigvals of S1 S2 on sum-of-outer-products moments), pytorch-fid's sqrtm
    # formula on our moments. Observed relative differences 1e-13; tolerance 1e-10.
    gen = torch.Generator().manual_seed(1)
    real = split.test_x
    fake = split.train_x[torch.randperm(split.train_x.shape[0], generator=gen)[:400]]
    fake = (fake + 0.3 * torch.randn(fake.shape, generator=gen)).clamp(-1, 1)
    # multiples of 1/64, so that x -> (x + 1) / 2 -> 2 u - 1 is exact in float32 and the
    # wrapper sees bit-identical images (else float32 round-off moves the FID by ~1e-8)
    fake = torch.round(fake * 64) / 64
    m1, s1 = gaussian_moments(extract_features(real, model))
    m2, s2 = gaussian_moments(extract_features(fake, model))
    ours = frechet_distance(m1, s1, m2, s2)
    assert ours > 1.0
    # float images in [0, 1], torchmetrics' normalize=True convention
    tm = _torchmetrics_fid(model, (real + 1) / 2, (fake + 1) / 2, normalize=True)
    assert tm == pytest.approx(ours, rel=1e-10)
    # with a custom module torchmetrics passes images through unchanged whatever `normalize`
    tm_raw = _torchmetrics_fid(model, (real + 1) / 2, (fake + 1) / 2, normalize=False)
    assert tm_raw == pytest.approx(ours, rel=1e-10)
    assert _fd_sqrtm(m1, s1, m2, s2) == pytest.approx(ours, rel=1e-10)


def test_matches_torchmetrics_uint8(model, split) -> None:
    # uint8 images in [0, 255] (torchmetrics' default convention): quantised digits, compared
    # with our distance on the same quantised images.
    def quantise(x):
        return torch.round((x + 1) * 127.5).to(torch.uint8)

    real, fake = quantise(split.test_x), quantise(split.train_x[:300])
    ours = domain_fid(
        fake.float() / 127.5 - 1,
        ReferenceStatistics(
            "q", *gaussian_moments(extract_features(real.float() / 127.5 - 1, model)), 450, "", ""
        ),
        _no_card(model),
    )
    assert _torchmetrics_fid(model, real, fake, normalize=False) == pytest.approx(ours, rel=1e-10)


def _no_card(model: DomainClassifier) -> DomainClassifier:
    clone = DomainClassifier(model.width, model.num_features)
    clone.load_state_dict(model.state_dict())
    return clone.eval()


# ===================================================================== Inception FID
def test_inception_fid_without_weights() -> None:
    x = torch.zeros(4, 1, 8, 8)
    with pytest.raises(ValueError, match="cannot be downloaded") as err:
        inception_fid(x, x)
    assert "weights_path" in str(err.value)
    with pytest.raises(ValueError, match="not found.*cannot be downloaded"):
        inception_fid(x, x, weights_path="/nonexistent/pt_inception.pth")


def test_inception_fid_passes_images_as_torchmetrics_expects(tmp_path: Path) -> None:
    # The real network needs weights that are not here; a stand-in metric records what
    # inception_fid hands to torchmetrics.
    weights = tmp_path / "inception.pth"
    weights.write_bytes(b"stand-in")
    seen: dict = {"updates": []}

    class FakeMetric:
        def __init__(self, **kwargs):
            seen["kwargs"] = kwargs

        def set_dtype(self, dtype):
            seen["dtype"] = dtype

        def update(self, imgs, real):
            seen["updates"].append((imgs.clone(), real))

        def compute(self):
            return torch.tensor(1.5)

    x = torch.linspace(-1, 1, 5 * 64).reshape(5, 1, 8, 8)
    assert inception_fid(x, x, weights, batch_size=2, metric_factory=FakeMetric) == 1.5
    assert seen["kwargs"] == {
        "feature": 2048,
        "normalize": True,
        "feature_extractor_weights_path": str(weights),
    }
    assert seen["dtype"] == torch.float64
    imgs = torch.cat([u[0] for u in seen["updates"] if not u[1]])
    assert imgs.shape == (5, 3, 8, 8) and imgs.min() == 0.0 and imgs.max() == 1.0
    assert [u[1] for u in seen["updates"]] == [True] * 3 + [False] * 3


def test_inception_fid_without_torch_fidelity(tmp_path: Path) -> None:
    pytest.importorskip("torchmetrics")
    from torchmetrics.utilities.imports import _TORCH_FIDELITY_AVAILABLE

    if _TORCH_FIDELITY_AVAILABLE:
        pytest.skip("torch-fidelity is installed here")
    weights = tmp_path / "inception.pth"
    weights.write_bytes(b"stand-in")
    x = torch.zeros(4, 1, 8, 8)
    with pytest.raises(ImportError, match="torch-fidelity"):
        inception_fid(x, x, weights)


def test_floors_at_smaller_sample_sizes_round_trip_and_are_larger(model, tmp_path: Path) -> None:
    fresh = compute_reference_statistics(
        model, out_dir=tmp_path, name="digits", floor_draws=3, floor_sizes=(100, 200)
    )
    loaded = reference_statistics("digits", directory=tmp_path)
    assert loaded.floor_at(100) == pytest.approx(fresh.floor_by_n[100])
    assert loaded.floor_at(450) == pytest.approx(fresh.floor)
    # FID is biased upwards at small n: the floor falls as the sample grows
    assert loaded.floor_at(100) > loaded.floor_at(200) > loaded.floor


def test_accuracy_is_computed_in_bounded_batches(model, split) -> None:
    x, y = split.test_x[:100], split.test_y[:100]
    assert classifier_accuracy(model, x, y, batch_size=7) == classifier_accuracy(model, x, y)


@pytest.fixture(scope="module")
def fashion():
    from vrg_analysis.data import load_fashion_mnist_split

    try:
        return load_fashion_mnist_split(seed=0)
    except FileNotFoundError as exc:  # CI installs it (make data); say how elsewhere
        pytest.skip(str(exc))


def test_shipped_fashion_classifier_meets_its_goal_and_its_card(fashion) -> None:
    net = load_domain_classifier("fashion-mnist")
    card = net.card
    assert net.image_size == 28 and card["data"]["split_sha256"] == fashion.sha256
    acc = classifier_accuracy(net, fashion.test_x, fashion.test_y)
    assert acc == pytest.approx(card["held_out_accuracy"], abs=1e-12)
    assert acc >= 0.92  # the goal
    assert card["sha256"] == sha256_file(DEFAULT_MODEL_DIR / "fashion-classifier.pt")


def test_shipped_fashion_reference_statistics_and_floors(fashion) -> None:
    ref = reference_statistics("fashion-mnist")
    net = load_domain_classifier("fashion-mnist")
    assert ref.n == 10_000 and ref.split_sha256 == fashion.sha256
    assert ref.classifier_sha256 == net.card["sha256"]
    # the floors fall as the sample grows (FID's upward bias at small n), all stored sizes
    sizes = [500, 1000, 2000, 5000]
    floors = [ref.floor_at(n) for n in sizes] + [ref.floor]
    assert all(a > b > 0 for a, b in zip(floors, floors[1:], strict=False))
    # 1,000 real training images scored as samples sit near the floor; noise is far above it
    real = domain_fid(fashion.train_x[:1000], ref, net)
    assert real < 2 * ref.floor_at(1000)
    noise = torch.rand(1000, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1
    assert domain_fid(noise, ref, net) > 20 * ref.floor_at(1000)
