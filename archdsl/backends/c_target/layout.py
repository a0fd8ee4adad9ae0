"""Weight layouts of the C kernels: transforms applied to the folded weights before they are emitted.

A layout is chosen per layer from its shape (the compiler knows every shape) and stated in the call,
so the kernel reads the weights in the order its register tiles consume them, with no packing at run
time. The C runtime's header states the same layouts (ARCH_PANEL in archdsl_rt.h).

Pointwise (1x1) convolution: panels of PANEL output channels, k-major inside a panel. Weight (co, k)
of a (cout, cin) matrix is at  p0 * cin + k * width + (co - p0),  p0 = co // PANEL * PANEL, width the
panel's number of rows (PANEL, or what is left for the last panel). A tile of rows then reads its
weights for one k as consecutive floats, and a panel is one stream through the whole product.
"""
from __future__ import annotations

import numpy as np

PANEL = 16  # a multiple of every fast path's row tile and one AVX-512 vector; must match archdsl_rt.h


def pointwise_panel(cout: int, cin: int) -> int:
    """The panel width for a pointwise layer: PANEL, or 1 (the plain matrix) when a panel would be
    a single row or a single column of weights anyway."""
    return PANEL if cout > 1 and cin > 1 else 1


def pack_panels(w: np.ndarray, panel: int) -> np.ndarray:
    """(cout, cin[, 1, 1]) weights -> the flat panel layout above (panel 1: unchanged)."""
    m = np.asarray(w, dtype=np.float32).reshape(w.shape[0], -1)
    if panel <= 1:
        return m.ravel()
    cout = m.shape[0]
    parts = [m[p0:p0 + panel].T.ravel() for p0 in range(0, cout, panel)]
    return np.concatenate(parts)
