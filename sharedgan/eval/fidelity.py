"""Inception score, FID and KID through torch-fidelity (the optional extra ``sharedgan[metrics]``), for
the whole mixture and for each generator alone, as PGAN Fig. 4 reports them.

torch-fidelity's InceptionV3 is the TensorFlow network ported bit for bit; its weights come from
its GitHub release on first use, or from ``weights_path`` on a machine without a network. The
real images' statistics are cached (per data set and count) under the data cache. KID (Bińkowski
et al. 2018: the squared MMD of Inception features under a cubic polynomial kernel, averaged over
random subsets) is unbiased at any sample size, so unlike FID it compares one generator's N/K
samples with the mixture's N fairly.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from sharedgan.errors import ConfigError

WEIGHTS_FILE = "weights-inception-2015-12-05-6726825d.pth"


KID_SUBSET = 1000  # torch-fidelity's default subset size, smaller when there are fewer samples


INSTALL_HINT = "pip install 'sharedgan[metrics]' (torch-fidelity, with a torchvision that matches your torch)"


class MetricsUnavailable(ConfigError):
    """IS/FID cannot be computed here; the message says what to install or where to put weights."""


class _Images(torch.utils.data.Dataset):
    """uint8 [N, H, W, C] → the uint8 [3, H, W] items torch-fidelity reads (grey images repeated)."""

    def __init__(self, images: np.ndarray):
        self.images = images

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        x = torch.from_numpy(np.array(self.images[i])).permute(2, 0, 1)
        return x.expand(3, -1, -1).contiguous() if x.shape[0] == 1 else x


def _splits(n: int) -> int:
    return max(1, min(10, n // 50))  # the usual 10 splits when there are samples enough for them


def inception_metrics(samples: np.ndarray, generator_ids: np.ndarray, num_generators: int, real: np.ndarray,
                      real_key: str, cache_root: Path, weights_path: str | None = None,
                      device: str = "cpu") -> dict[str, dict[str, float]]:
    """{"mixture": {...}, "generator-0": {...}, ...}, each with inception_score_mean/std and
    frechet_inception_distance against ``real`` (uint8 [M, H, W, C]). ``real_key`` names the real
    images' cached statistics (change it when the images change)."""
    try:
        import torch_fidelity
    except Exception as exc:  # noqa: BLE001 - a broken torchvision fails here with any error type
        raise MetricsUnavailable(f"Inception score and FID need torch-fidelity ({str(exc).splitlines()[0]}): "
                                 f"{INSTALL_HINT}") from None
    if weights_path is not None and not Path(weights_path).is_file():
        raise MetricsUnavailable(f"no Inception weights at {weights_path}; pass the path of {WEIGHTS_FILE}")
    groups = {"mixture": samples}
    groups.update({f"generator-{k}": samples[generator_ids == k] for k in range(num_generators)})
    results = {}
    for name, images in groups.items():
        if len(images) < 2:
            continue  # a generator that drew fewer than two samples has no score
        try:
            m = torch_fidelity.calculate_metrics(
                input1=_Images(images), input2=_Images(real), isc=True, fid=True, kid=True,
                kid_subset_size=min(KID_SUBSET, len(images), len(real)), cuda=device.startswith("cuda"),
                isc_splits=_splits(len(images)), verbose=False, save_cpu_ram=True,  # no loader worker processes
                feature_extractor_weights_path=weights_path,
                cache=True, cache_root=str(cache_root), input2_cache_name=f"sharedgan-{real_key}")
        except (OSError, RuntimeError) as exc:  # URLError is an OSError: no network for the weights
            if weights_path is None:
                raise MetricsUnavailable(
                    f"torch-fidelity could not get its Inception weights ({str(exc).splitlines()[0]}); on a "
                    f"machine without network, copy {WEIGHTS_FILE} here and pass --inception-weights PATH") from None
            raise MetricsUnavailable(f"torch-fidelity failed with the weights {weights_path}: "
                                     f"{str(exc).splitlines()[0]}") from None
        results[name] = {"inception_score_mean": m["inception_score_mean"],
                         "inception_score_std": m["inception_score_std"],
                         "fid": m["frechet_inception_distance"], "kid": m["kernel_inception_distance_mean"],
                         "kid_std": m["kernel_inception_distance_std"], "samples": len(images)}
    return results


def format_inception(results: dict[str, dict[str, float]], real_count: int) -> str:
    lines = [f"Inception score, FID and KID (torch-fidelity; FID and KID against {real_count} real images)",
             f"{'':12s} {'samples':>8s} {'IS':>14s} {'FID':>9s} {'KID':>18s}"]
    for name, m in results.items():
        lines.append(f"{name:12s} {m['samples']:>8d} "
                     f"{m['inception_score_mean']:>7.3f} ± {m['inception_score_std']:<5.3f}"
                     f" {m['fid']:>9.2f} {m['kid']:>8.4f} ± {m['kid_std']:<7.4f}")
    return "\n".join(lines)

