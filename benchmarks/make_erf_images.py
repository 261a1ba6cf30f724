"""Write the 9 scikit-image photos that `lsbench erf` uses by default as PNG files, for machines without
scikit-image (the GPU image): `python benchmarks/make_erf_images.py .erf_images`, then `--images .erf_images`.
The pixels are the same arrays, losslessly written."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image

from lsbench.erf import SKIMAGE_IMAGES, skimage_image


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(SKIMAGE_IMAGES):
        array = skimage_image(name)
        if array.ndim == 2:
            array = np.stack([array] * 3, axis=-1)
        Image.fromarray(array[..., :3]).save(out / f"{i}_{name}.png")
    print(f"written: {len(SKIMAGE_IMAGES)} images in {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else ".erf_images"))
