"""PNG of one site's parameters with true events and detector alarms."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np


def plot_site(ts: np.ndarray, values: np.ndarray, params: tuple[str, ...], path: str | os.PathLike,
              *, title: str = "", alarms: tuple[np.ndarray, np.ndarray] | None = None,
              alarm_label: str = "alarm", events: tuple[np.ndarray, np.ndarray] | None = None) -> Path:
    """PNG of one site's parameters (one panel each) with true events and detector alarms.

    Parameters
    ----------
    ts, values
        Sample times (int64 ms) and ``(n, n_params)`` values.
    params
        Column names (panel titles).
    path
        PNG to write.
    title
        Figure title.
    alarms, events
        ``(start, end)`` int64 ms arrays shaded red (alarms) and drawn as grey spans (events).

    Returns
    -------
    Path
        The written file.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from uda.store import atomic_write

    t = ts.astype("datetime64[ms]")

    def _mask(spans, pad):
        m = np.zeros(ts.size, dtype=bool)
        if spans is not None:
            for s, e in zip(*spans, strict=True):
                m |= (ts >= s) & (ts <= e + pad)
        return m

    ev_mask = _mask(events, 0)
    al_mask = _mask(alarms, 0)
    fig, axes = plt.subplots(len(params), 1, figsize=(11, 1.6 * len(params) + 0.6), sharex=True)
    axes = np.atleast_1d(axes)
    for j, (ax, name) in enumerate(zip(axes, params, strict=True)):
        trans = ax.get_xaxis_transform()
        if ev_mask.any():
            ax.fill_between(t, 0, 1, where=ev_mask, transform=trans, color="0.8", step="mid",
                            label="true event" if j == 0 else None)
        if al_mask.any():
            ax.fill_between(t, 0, 1, where=al_mask, transform=trans, color="tab:red", alpha=0.3,
                            step="mid", label=f"{alarm_label} alarm" if j == 0 else None)
        ax.plot(t, values[:, j], lw=0.7, color="tab:blue")
        ax.set_ylabel(name, fontsize=8, rotation=0, ha="right")
        ax.tick_params(labelsize=7)
    if ev_mask.any() or al_mask.any():
        axes[0].legend(fontsize=7, loc="upper right")
    fig.suptitle(title)
    fig.tight_layout()
    out = Path(path)
    atomic_write(out, lambda tmp: fig.savefig(tmp, dpi=90, format="png"))
    plt.close(fig)
    return out
