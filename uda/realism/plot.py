"""The fidelity report as a PNG: statistics beside the reference's bands, daily profiles, ACF curves."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from uda.realism.stats import STATS, quiet


def plot(path: str | Path, subject: dict, reference: dict | None = None,
         rows: list[dict] | None = None) -> None:
    """Write a PNG: statistics subject vs reference with bands, daily profiles and ACF curves."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from uda.store import atomic_write

    colours = {"ok": "#2a9d8f", "low": "#d62828", "high": "#d62828", "n/a": "#8d99ae"}
    sub_c, ref_c = "#264653", "#b08968"
    shown = [st for st in STATS if st.key not in ("gap_median_h", "gap_max_h")]
    by_key = {r["key"]: r for r in rows or []}
    sname = subject.get("name") or "subject"
    rname = (reference or {}).get("name") or "reference"

    def summ(sig, key):
        return ((sig or {}).get("stats", {}).get(key) or {}) if sig else {}

    # x range: everything plotted, within [-1, 4]
    xs = [0.0, 1.0]
    for st in shown:
        for d in (summ(subject, st.key), summ(reference, st.key)):
            xs += [d[k] for k in ("q25", "q75") if d.get(k) is not None]
        if by_key.get(st.key, {}).get("band"):
            xs += by_key[st.key]["band"]
    x_lo, x_hi = max(min(xs) - 0.1, -1.05), min(max(xs) + 0.15, 4.0)

    def clip(v):
        return min(max(v, x_lo), x_hi)

    fig = plt.figure(figsize=(13.5, 8.6), layout="constrained")
    gs = fig.add_gridspec(2, 2, width_ratios=[1.2, 1])
    ax = fig.add_subplot(gs[:, 0])
    y = np.arange(len(shown))[::-1].astype(float)
    for k, (yy, st) in enumerate(zip(y, shown, strict=True)):
        s, r = summ(subject, st.key), summ(reference, st.key)
        row = by_key.get(st.key)
        if row and row["band"]:
            lo, hi = clip(row["band"][0]), clip(row["band"][1])
            ax.add_patch(plt.Rectangle((lo, yy - 0.36), hi - lo, 0.72, color="#e9ecef", zorder=0, lw=0))
        if r.get("median") is not None:
            ax.plot([clip(r["q25"]), clip(r["q75"])], [yy - 0.14] * 2, color=ref_c, lw=2.2, zorder=2)
            ax.plot(clip(r["median"]), yy - 0.14, "s", color=ref_c, ms=6.5, zorder=3)
        if s.get("median") is not None:
            c = colours[row["verdict"]] if row else sub_c
            ax.plot([clip(s["q25"]), clip(s["q75"])], [yy + 0.14] * 2, color=c, lw=2.2, zorder=2)
            ax.plot(clip(s["median"]), yy + 0.14, "o", color=c, ms=7.5, zorder=3)
        else:
            ax.text(x_lo + 0.02, yy + 0.14, "n/a", va="center", fontsize=7.5, color=colours["n/a"])
        if k == 0 or shown[k - 1].group != st.group:
            if k:
                ax.axhline(yy + 0.5, color="#adb5bd", lw=0.6)
            ax.text(x_hi - 0.02, yy + 0.3, st.group, ha="right", va="center", fontsize=8,
                    style="italic", color="#6c757d")
    labels = [st.label + (f"  [{by_key[st.key]['verdict']}]" if st.key in by_key else "") for st in shown]
    ax.set_yticks(y, labels, fontsize=8.5)
    for tick, st in zip(ax.get_yticklabels(), shown, strict=True):
        v = by_key.get(st.key, {}).get("verdict")
        if v in ("low", "high"):
            tick.set_color(colours[v])
    for x in (0.0, 1.0):
        ax.axvline(x, color="#adb5bd", lw=0.6, ls=":")
    ax.set_xlim(x_lo, x_hi)
    ax.set_ylim(-0.7, len(shown) - 0.3)
    ax.set_xlabel("median (marker) and interquartile range (line) over series; grey: band around the reference")
    if reference:
        handles = [plt.Line2D([], [], color=colours["ok"], marker="o", lw=2, label="subject, within the band"),
                   plt.Line2D([], [], color=colours["low"], marker="o", lw=2, label="subject, outside"),
                   plt.Line2D([], [], color=ref_c, marker="s", lw=2, label="reference")]
    else:
        handles = [plt.Line2D([], [], color=sub_c, marker="o", lw=2, label="subject")]
    ax.set_title("statistics that decide the forecaster", fontsize=11, loc="left")

    ax2 = fig.add_subplot(gs[0, 1])
    for sig, c, lab in ((subject, sub_c, sname), (reference, ref_c, rname)):
        if not sig:
            continue
        cv = sig["curves"]
        h = cv["profile_hours"]
        width = max(1, round(3600 / sig["interval_s"]))
        ax2.plot(h, _smooth(_arr(cv["profile_weekday"]), width), color=c, lw=1.8, label=f"{lab}, weekdays")
        ax2.plot(h, _smooth(_arr(cv["profile_weekend"]), width), color=c, lw=1.4, ls="--",
                 label=f"{lab}, weekends")
    ax2.set_xlim(0, 24)
    ax2.set_xticks(range(0, 25, 3))
    ax2.set_xlabel("hour of day")
    ax2.set_ylabel("value / series mean (median over series)")
    ax2.set_title("mean daily profile (1-h moving average)", fontsize=11, loc="left")
    ax2.legend(fontsize=7.5, frameon=False, loc="best")

    ax3 = fig.add_subplot(gs[1, 1])
    for sig, c, lab in ((subject, sub_c, sname), (reference, ref_c, rname)):
        if not sig:
            continue
        cv = sig["curves"]
        ax3.plot(cv["acf_lag_hours"], _arr(cv["acf"]), color=c, lw=1.8, label=lab)
    ax3.axhline(0, color="#adb5bd", lw=0.6)
    ax3.set_xlabel("lag (hours)")
    ax3.set_ylabel("autocorrelation (median over series)")
    ax3.set_title("persistence of deviations from the profile", fontsize=11, loc="left")
    ax3.set_ylim(-0.3, 1.02)
    ax3.legend(fontsize=8, frameon=False)
    fig.suptitle(f"uda realism: {sname}" + (f"  vs  {rname}" if reference else ""), fontsize=13)
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.06), ncol=len(handles),
              fontsize=8.5, frameon=False)
    atomic_write(Path(path), lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)


def _smooth(x: np.ndarray, width: int) -> np.ndarray:
    """Circular centred moving average over ``width`` slots of a daily curve (NaN-aware)."""
    if width <= 1:
        return x
    ok = ~np.isnan(x)
    k = np.ones(width)
    pad = width // 2
    v = np.concatenate([x[-pad:], x, x[:pad]]) if pad else x
    m = np.concatenate([ok[-pad:], ok, ok[:pad]]) if pad else ok
    s = np.convolve(np.where(m, v, 0.0), k, "valid")
    n = np.convolve(m.astype(float), k, "valid")
    with quiet():
        out = np.where(n > 0, s / n, np.nan)
    return out[: x.size]


def _arr(xs: list) -> np.ndarray:
    return np.array([np.nan if x is None else x for x in xs], dtype=float)
