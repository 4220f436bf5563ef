"""Image sets from anywhere (folders, .npz) and reference statistics: what is accepted, what is refused before
any work, and that statistics read back from a file give the same FID and KID as the images they came from."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from datamodules.image_sets import ArrayImages, DatasetImages, FolderImages, open_image_set
from models.measures.image_metrics import ImageQuality
from models.measures.reference_stats import ReferenceKey, load_statistics, reference_statistics, save_statistics
from qgfd_gen.errors import UsageError
from sampling.commands.evaluate import main as eval_main
from extractor_cases import TinyExtractor

# source modules these tests cover besides the one whose name they mirror (tests/test_architecture.py)
COVERS = ["models.measures.reference_stats", "sampling.score_image_files"]


def random_images(count: int, size: int = 16, seed: int = 0, shift: int = 0) -> np.ndarray:
    images = np.random.default_rng(seed).integers(0, 200, (count, size, size, 3))
    return (images + shift).clip(0, 255).astype(np.uint8)


def write_folder(folder, images: np.ndarray, suffix: str = ".png"):
    folder.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(images):
        Image.fromarray(image).save(folder / f"{i:03d}{suffix}")
    return folder


def test_a_folder_batches_images_of_one_size_together_and_hashes_its_content(tmp_path):
    folder = write_folder(tmp_path / "a", random_images(5))
    write_folder(folder / "big", random_images(2, size=24))
    images = FolderImages(folder)
    batches = list(images.batches(4))
    assert len(images) == 7 and [tuple(b.shape) for b in batches] == [(4, 3, 16, 16), (1, 3, 16, 16), (2, 3, 24, 24)]
    assert np.array_equal((batches[0][0].permute(1, 2, 0) * 255).round().byte().numpy(), random_images(5)[0])
    digest = images.content_digest()
    assert digest == FolderImages(folder).content_digest()
    Image.fromarray(random_images(1, seed=9)[0]).save(folder / "000.png")
    assert FolderImages(folder).content_digest() != digest


def test_npz_layouts_are_read_alike(tmp_path):
    images = random_images(4)
    np.savez(tmp_path / "nhwc.npz", images)
    np.savez(tmp_path / "nchw.npz", images.transpose(0, 3, 1, 2))
    np.savez(tmp_path / "list.npz", *images)  # numpy.savez of a list: one array per image
    np.savez(tmp_path / "labelled.npz", images, np.arange(4))  # guided-diffusion: images, then labels
    read = [torch.cat(list(ArrayImages(tmp_path / f"{name}.npz").batches(3)))
            for name in ("nhwc", "nchw", "list", "labelled")]
    assert all(torch.equal(r, read[0]) for r in read) and read[0].shape == (4, 3, 16, 16)


@pytest.mark.parametrize("make, message", [
    (lambda p: np.savez(p, random_images(3).astype(np.float32)), "float32; need uint8"),
    (lambda p: np.savez(p, random_images(3)[..., 0]), r"shape \(3, 16, 16\).*1-channel"),
    (lambda p: np.savez(p, random_images(3)[..., :1]), r"shape \(3, 16, 16, 1\)"),
    (lambda p: np.savez(p, random_images(1)[0], random_images(1, size=8)[0]), "different shapes"),
    (lambda p: np.savez(p, mu=np.zeros(4), sigma=np.eye(4)), "holds FID statistics"),
    (lambda p: np.savez(p), "holds no arrays"),
    (lambda p: p.write_bytes(b"PK\x03\x04 not really"), "not a readable .npz"),
])
def test_bad_npz_files_are_refused_naming_the_problem(tmp_path, make, message):
    path = tmp_path / "bad.npz"
    make(path)
    with pytest.raises(UsageError, match=message):
        open_image_set(path)


def test_bad_folders_are_refused_before_any_work(tmp_path):
    with pytest.raises(UsageError, match="holds no images"):
        FolderImages((tmp_path / "empty").mkdir() or tmp_path / "empty")
    mixed = write_folder(tmp_path / "mixed", random_images(2))
    (mixed / "notes.txt").write_text("not an image")
    with pytest.raises(UsageError, match=r"1 file\(s\) that are not images \('notes.txt'\)"):
        FolderImages(mixed)
    grey = write_folder(tmp_path / "grey", random_images(2))
    Image.fromarray(random_images(1)[0, ..., 0]).save(grey / "grey.png")
    with pytest.raises(UsageError, match="grey.png' has mode 'L', not RGB"):
        FolderImages(grey)
    broken = write_folder(tmp_path / "broken", random_images(2))
    (broken / "cut.png").write_bytes((broken / "000.png").read_bytes()[:20])
    with pytest.raises(UsageError, match="cut.png' is not a readable image"):
        FolderImages(broken)
    (tmp_path / "hidden").mkdir()
    (tmp_path / "hidden" / ".DS_Store").write_bytes(b"\0")
    with pytest.raises(UsageError, match="holds no images"):  # hidden files are ignored, not counted as images
        FolderImages(tmp_path / "hidden")
    with pytest.raises(UsageError, match="does not exist"):
        open_image_set(tmp_path / "nowhere")


def quality_of(extractor=None) -> ImageQuality:
    quality = ImageQuality(extractor or TinyExtractor(), want_fid=True, want_is=False, want_kid=True, kid_subset_size=8)
    quality.network = "tiny"
    return quality


def test_statistics_from_the_cache_or_a_file_give_the_same_scores_as_the_images(tmp_path):
    reference = ArrayImages(_npz(tmp_path / "ref.npz", random_images(20, seed=1)))
    fake = torch.from_numpy(random_images(16, seed=2, shift=40)).permute(0, 3, 1, 2).float() / 255
    key = ReferenceKey(reference.content_digest(), "tiny", None, len(reference))

    def scores(fill) -> dict:
        quality = quality_of()
        fill(quality)
        quality.update_fake(fake)
        return quality.compute()

    computed = []
    first = scores(lambda q: computed.append(reference_statistics(q, reference.batches(6), key)[1]))
    again = scores(lambda q: computed.append(reference_statistics(q, iter(()), key)[1]))  # no images: from cache
    assert computed == [True, False] and first == again and first["fid"] > 0
    quality = quality_of()
    reference_statistics(quality, iter(()), key)
    save_statistics(tmp_path / "ref.pt", quality, key)
    assert scores(lambda q: load_statistics(tmp_path / "ref.pt", q)) == first
    other = quality_of()
    other.network = "another"
    with pytest.raises(UsageError, match="computed with network 'tiny'; this run scores with 'another'"):
        load_statistics(tmp_path / "ref.pt", other)


def test_mu_and_sigma_give_the_fid_of_the_features_they_summarise(tmp_path):
    extractor = TinyExtractor()
    real = torch.from_numpy(random_images(20, seed=1)).permute(0, 3, 1, 2).float() / 255
    fake = torch.from_numpy(random_images(16, seed=2, shift=40)).permute(0, 3, 1, 2).float() / 255
    features = extractor.features(real).double().detach().numpy()
    np.savez(tmp_path / "stats.npz", mu=features.mean(0), sigma=np.cov(features, rowvar=False))
    direct = ImageQuality(extractor, want_fid=True, want_is=False)
    direct.update_real(real)
    direct.update_fake(fake)
    from_file = ImageQuality(extractor, want_fid=True, want_is=False)
    load_statistics(tmp_path / "stats.npz", from_file)
    from_file.update_fake(fake)
    assert from_file.compute()["fid"] == pytest.approx(direct.compute()["fid"], rel=1e-5)
    with pytest.raises(UsageError, match="KID and prdc need the reference's features"):
        load_statistics(tmp_path / "stats.npz", quality_of())
    np.savez(tmp_path / "narrow.npz", mu=np.zeros(3), sigma=np.eye(3))
    with pytest.raises(UsageError, match="do not match the network's 8 features"):
        load_statistics(tmp_path / "narrow.npz", ImageQuality(extractor, want_fid=True, want_is=False))


def test_dataset_images_are_the_data_modules_first_images_in_unit_range():
    data = torch.linspace(-1, 1, 5 * 3 * 4 * 4).reshape(5, 3, 4, 4)
    images = DatasetImages(torch.utils.data.TensorDataset(data), 3, "a tensor")
    assert len(images) == 3 and torch.allclose(torch.cat(list(images.batches(2))), (data[:3] + 1) / 2)
    assert images.content_digest() != DatasetImages(torch.utils.data.TensorDataset(data), 4, "x").content_digest()


def test_qgfd_eval_scores_image_files_and_refuses_bad_ones_leaving_nothing(tmp_path, capsys):
    extractor = tmp_path / "tiny.pt"
    torch.jit.script(TinyExtractor()).save(str(extractor))
    samples = write_folder(tmp_path / "samples", random_images(12, seed=3, shift=30), ".jpg")
    reference = _npz(tmp_path / "reference.npz", random_images(10, seed=4))
    common = ["images", "--feature-extractor", str(extractor), "--metrics", "fid,kid"]
    assert eval_main([*common, "--samples", str(samples), "--reference", str(reference), "--json",
                      str(tmp_path / "scores.json"), "--save-reference", str(tmp_path / "ref.pt")]) == 0
    scores = json.loads((tmp_path / "scores.json").read_text())
    assert scores["samples"] == 12 and scores["reference_images"] == 10 and scores["fid_label"] == "FID@12"
    assert scores["fid"] > 0 and scores["fid_network"].startswith("custom-") and scores["resize"] is None
    assert eval_main([*common, "--samples", str(samples), "--reference", str(tmp_path / "ref.pt"), "--json",
                      str(tmp_path / "again.json")]) == 0  # KID's subset shrinks to the file's 10 images
    again = json.loads((tmp_path / "again.json").read_text())
    assert again["fid"] == pytest.approx(scores["fid"]) and again["reference_images"] == 10
    capsys.readouterr()
    (samples / "readme.md").write_text("x")
    assert eval_main([*common, "--samples", str(samples), "--reference", str(reference), "--json",
                      str(tmp_path / "refused.json")]) == 2
    assert "readme.md" in capsys.readouterr().err and not (tmp_path / "refused.json").exists()
    assert eval_main(["images", "--samples", str(samples)]) == 2
    assert "--samples and --reference go together" in capsys.readouterr().err


def _npz(path, images: np.ndarray):
    np.savez(path, images)
    return path


def test_a_cached_file_made_for_fewer_metrics_is_computed_again(tmp_path):
    reference = ArrayImages(_npz(tmp_path / "ref.npz", random_images(10, seed=5)))
    fid_only = ImageQuality(TinyExtractor(), want_fid=True, want_is=False, want_kid=False)
    fid_only.network = "tiny"
    key = ReferenceKey(reference.content_digest(), "tiny", None, len(reference))
    assert reference_statistics(fid_only, reference.batches(4), key)[1]
    both = quality_of()  # FID and KID: the cached file lacks KID's features
    path, computed = reference_statistics(both, reference.batches(4), key)
    assert computed and both.real_count == 10 and "kid_features" in torch.load(path, weights_only=True)["state"]
    assert not reference_statistics(quality_of(), iter(()), key)[1]  # and now it serves both


@pytest.mark.parametrize("make, message", [
    (lambda p: np.savez(p, mu=np.full(8, np.nan), sigma=np.eye(8)), "holds NaN or infinite values"),
    (lambda p: np.savez(p, mu=np.zeros(8), sigma=-np.eye(8)), "is not positive semi-definite"),
    (lambda p: np.savez(p, mu=np.zeros(8), sigma=np.triu(np.ones((8, 8)))), "sigma is not symmetric"),
    (lambda p: np.savez(p, mu=np.array([object()] * 8), sigma=np.eye(8)), "is not an .npz of numeric mu and sigma"),
    (lambda p: np.save(open(p, "wb"), np.zeros(8)), "is not an .npz of numeric mu and sigma"),
])
def test_statistics_that_would_give_a_wrong_fid_quietly_are_refused(tmp_path, make, message):
    """Issue 40: an all-NaN mu gave `fid: null` with no note, a sigma that is no covariance FID -4.8e7."""
    path = tmp_path / "stats.npz"
    make(path)
    with pytest.raises(UsageError, match=message):
        load_statistics(path, ImageQuality(TinyExtractor(), want_fid=True, want_is=False))


def test_a_cache_holding_another_sets_statistics_under_this_sets_name_is_computed_again(tmp_path):
    """Issue 40: the cache compared only the network, so another set's file under this set's name was used."""
    from models.measures.reference_stats import cached_statistics_path

    real = torch.from_numpy(random_images(12, seed=5)).permute(0, 3, 1, 2).float() / 255
    other = torch.from_numpy(random_images(12, seed=6, shift=60)).permute(0, 3, 1, 2).float() / 255
    key, other_key = ReferenceKey("set-a", "tiny", None, 12), ReferenceKey("set-b", "tiny", None, 12)
    planted = quality_of()
    planted.update_real(other)
    save_statistics(cached_statistics_path(key), planted, other_key)  # planted under set-a's name
    fresh, direct = quality_of(), quality_of()
    path, computed = reference_statistics(fresh, iter([real]), key)
    direct.update_real(real)
    assert computed and torch.allclose(fresh.real_state()["sum"], direct.real_state()["sum"])


def test_one_image_and_damaged_statistics_are_refused_before_any_work(tmp_path, capsys):
    extractor = tmp_path / "tiny.pt"
    torch.jit.script(TinyExtractor()).save(str(extractor))
    one = write_folder(tmp_path / "one", random_images(1, seed=3), ".png")
    many = _npz(tmp_path / "many.npz", random_images(6, seed=4))
    common = ["images", "--feature-extractor", str(extractor), "--metrics", "fid", "--json", str(tmp_path / "s.json")]
    assert eval_main([*common, "--samples", str(one), "--reference", str(many)]) == 2
    assert "need at least 2 images" in capsys.readouterr().err
    torch.save({"format": 1, "state": {}}, tmp_path / "nokey.pt")
    assert eval_main([*common, "--samples", str(many), "--reference", str(tmp_path / "nokey.pt")]) == 2
    assert "damaged `key` or `state`" in capsys.readouterr().err and not (tmp_path / "s.json").exists()


def test_out_is_refused_where_scoring_files_writes_json(tmp_path, capsys):
    many = _npz(tmp_path / "many.npz", random_images(6, seed=4))
    assert eval_main(["images", "--samples", str(many), "--reference", str(many), "--out", str(tmp_path / "d")]) == 2
    assert "give --json FILE instead" in capsys.readouterr().err and not (tmp_path / "d").exists()
