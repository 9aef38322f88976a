"""Which model types the venv's mlx-lm has a module for, and which quantization modes its mlx accepts;
prints a protocol.Support as JSON (the tool side caches it per version).

    python -m mlxtasks.runtime.support
"""

from __future__ import annotations

import pkgutil

from ..protocol import Support
from . import gpu

# Modes to try: a config naming any other needs a newer mlx than any of these.
QUANT_MODES = ("affine", "mxfp4", "nvfp4", "mxfp8")


def answer() -> Support:
    import mlx.core as mx
    import mlx_lm
    import mlx_lm.models
    from mlx_lm.utils import MODEL_REMAPPING

    modules = {module.name for module in pkgutil.iter_modules(mlx_lm.models.__path__)}
    modes = []
    for mode in QUANT_MODES:
        try:
            mx.quantize(mx.zeros((64, 64)), mode=mode)
            modes.append(mode)
        except (ValueError, TypeError):  # an unknown mode, or an mlx without modes at all
            continue
    remapped = {name for name, target in MODEL_REMAPPING.items() if target in modules}
    return Support(mlx_lm.__version__, mx.__version__, tuple(sorted(modules | remapped)), tuple(modes))


def main() -> None:
    gpu.use_kernel_cache()
    print(answer().to_json())


if __name__ == "__main__":
    main()
