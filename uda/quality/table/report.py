"""The report half of the table profiler: turns the scan state into the JSON-ready profile.

:class:`ProfileReport` is the base of :class:`uda.quality.table.profile.TableProfiler`: per column the
counts, sentinels, distinct values, quantiles and outliers from the sketches; the time column's
step, gaps and duplicates per group (:meth:`ProfileReport.report`); the findings; and the rows and
missing cells per group and hour for the plot (:meth:`ProfileReport.bin_table`).
"""

from __future__ import annotations

import gc
from typing import Any

import numpy as np
import polars as pl

from uda.kernels.sketches import (
    HLL_P,
    QS_ALPHA,
    hll_error,
    hll_estimate,
    qs_add,
    qs_new,
    qs_quantile,
    qs_representatives,
)
from uda.kernels.timeline import STEP_BITS
from uda.quality.table.schema import TEXT_SENTINELS, format_duration, human_duration
from uda.quality.table.state import HOUR_US, NumState, TextState, new_registers

OUTLIER_IQR = 3.0


_QUANTILES = (0.001, 0.01, 0.25, 0.5, 0.75, 0.99, 0.999)


class ProfileReport:
    """The report of a :class:`uda.quality.table.profile.TableProfiler` (its base class): reads the
    scan state the profiler keeps (``G``, ``num``, ``text``, ``ranges``, ``steps``, ``bins``, ...)."""

    def sentinels_of(self, st: NumState) -> list[float]:
        """Sentinels of a numeric column: the declared ones, and the candidates detected so far (a negative
        one in a column whose other values are all >= 0, a positive one above twice every other value)."""
        spec = self.schema.columns.get(st.name)
        declared = [float(x) for x in (spec.sentinels if spec else [])]
        out = list(declared)
        if not self.schema.detect_sentinels:
            return out
        counts = st.arr("cand").sum(axis=0)
        lo, hi = st.ext
        for c, k in zip(st.cands, counts, strict=True):
            if c in declared or k == 0:
                continue
            if (c < 0 and lo >= 0) or (c > 0 and c > 2 * max(hi, 0.0)):
                out.append(float(c))
        return out

    def _group_names(self) -> list[str]:
        names = [""] * len(self.group_codes)
        for k, c in self.group_codes.items():
            names[c] = "(null)" if k is None else str(k)
        return names

    def _timeline(self, out_of_order_file: np.ndarray | None) -> tuple[dict, dict[str, dict]]:
        """Whole-table and per-group time measures."""
        n_g = len(self.group_codes)
        keys, counts = self.steps.items()
        gk = keys >> STEP_BITS
        dk = keys & ((1 << (STEP_BITS - 1)) - 1)
        dk = np.where(keys & (1 << (STEP_BITS - 1)), dk * 1000, dk)
        per: dict[str, dict] = {}
        names = self._group_names()
        G = self.G
        declared = self.schema.step_us
        # per group at once: the step (declared, else the most frequent positive difference, the
        # smallest of equals), then per (group, difference) key whether it is a gap, its missing steps
        has = np.bincount(gk, minlength=n_g)[:n_g] > 0
        if declared is not None:
            step_g = np.full(n_g, declared, np.int64)
        else:
            step_g = np.zeros(n_g, np.int64)
            if keys.size:
                order = np.lexsort((dk, -counts, gk))
                gs = gk[order]
                firsts = order[np.r_[True, gs[1:] != gs[:-1]]]
                step_g[gk[firsts]] = dk[firsts]
        step_k = step_g[gk]
        gap = 2 * dk >= 3 * step_k
        gaps_g, missing_g, irregular_g = (np.zeros(n_g, np.int64) for _ in range(3))
        np.add.at(gaps_g, gk[gap], counts[gap])
        np.add.at(missing_g, gk[gap], counts[gap] * (np.floor(dk[gap] / step_k[gap] + 0.5).astype(np.int64) - 1))
        irr = dk % step_k != 0
        np.add.at(irregular_g, gk[irr], counts[irr])
        any_gap = np.bincount(gk[gap], minlength=n_g)[:n_g] > 0
        long_g = np.where(any_gap, G["max_step"][:n_g], 0)
        has_step = has if declared is None else np.ones(n_g, bool)
        cols = {k: v.tolist() for k, v in (
            ("rows", G["rows"][:n_g]), ("n_ok", G["n_ok"][:n_g]), ("t_null", G["t_null"][:n_g]),
            ("t_bad", G["t_bad"][:n_g]), ("t_min", G["t_min"][:n_g]), ("t_max", G["t_max"][:n_g]),
            ("step", step_g), ("has_step", has_step), ("gaps", gaps_g), ("missing", missing_g),
            ("irregular", irregular_g), ("long", long_g), ("dups", G["dups"][:n_g]),
            ("ooo", (out_of_order_file if out_of_order_file is not None else G["out_of_order"])[:n_g]))}
        iso: dict[int, str] = {}
        fmt: dict[int | None, str | None] = {}
        for gi in range(n_g):
            step = cols["step"][gi] if cols["has_step"][gi] else None
            n_ok = cols["n_ok"][gi]
            long_gap = cols["long"][gi]
            t0, t1 = cols["t_min"][gi], cols["t_max"][gi]
            if n_ok:
                iso[t0] = iso[t0] if t0 in iso else _iso(t0)
                iso[t1] = iso[t1] if t1 in iso else _iso(t1)
            fmt[step] = fmt[step] if step in fmt else format_duration(step)
            per[names[gi]] = {
                "rows": cols["rows"][gi], "parsed": n_ok, "nulls": cols["t_null"][gi],
                "unparseable": cols["t_bad"][gi],
                "first": iso[t0] if n_ok else None, "last": iso[t1] if n_ok else None,
                "step": fmt[step], "step_s": None if step is None else step / 1e6,
                "gaps": cols["gaps"][gi], "longest_gap": human_duration(long_gap) if long_gap else None,
                "longest_gap_s": long_gap / 1e6, "missing_steps": cols["missing"][gi],
                "irregular_steps": cols["irregular"][gi], "duplicates": cols["dups"][gi],
                "out_of_order": cols["ooo"][gi],
            }
        tot = {"gaps": int(gaps_g.sum()), "missing_steps": int(missing_g.sum()),
               "irregular_steps": int(irregular_g.sum())}
        longest = int(long_g.max(initial=0))
        steps = {v["step_s"] for v in per.values() if v["step_s"]}
        one = steps.pop() if len(steps) == 1 else None
        whole = {
            "column": self.time_col, "step": format_duration(round(one * 1e6)) if one else ("mixed" if steps else None),
            "step_s": one,
            "gaps": tot["gaps"], "longest_gap": human_duration(longest) if longest else None,
            "longest_gap_s": longest / 1e6, "missing_steps": tot["missing_steps"],
            "irregular_steps": tot["irregular_steps"],
            "duplicates": sum(v["duplicates"] for v in per.values()),
            "out_of_order": sum(v["out_of_order"] for v in per.values()),
            "nulls": sum(v["nulls"] for v in per.values()), "unparseable": sum(v["unparseable"] for v in per.values()),
            "first": min((v["first"] for v in per.values() if v["first"]), default=None),
            "last": max((v["last"] for v in per.values() if v["last"]), default=None),
            "resorted": bool(getattr(self, "resorted", False)),
        }
        return whole, per

    _FIELDS = ("nulls", "sentinels", "invalid", "unparseable", "stuck_rows")

    def _num_arrays(self, st: NumState, sentinels: list[float]) -> dict[str, np.ndarray]:
        """Per-group counts of a numeric column (arrays over the groups)."""
        n_g = len(self.group_codes)
        cand = st.arr("cand")[:n_g]
        lo, hi, _ = self.ranges[st.name]
        is_sent = np.array([c in sentinels for c in st.cands], bool)
        out_rng = np.array([(c not in sentinels) and (c < lo or c > hi) for c in st.cands], bool)
        return {"nulls": st.arr("nulls")[:n_g], "sentinels": cand[:, is_sent].sum(axis=1),
                "invalid": st.arr("invalid")[:n_g] + cand[:, out_rng].sum(axis=1) + st.arr("not_allowed")[:n_g],
                "unparseable": st.arr("unparseable")[:n_g], "stuck_rows": st.arr("stuck_rows")[:n_g]}

    def _num_column(self, st: NumState) -> dict[str, Any]:
        sentinels = self.sentinels_of(st)
        n_g = len(self.group_codes)
        arr = self._num_arrays(st, sentinels)
        cand = st.arr("cand")[:n_g].sum(axis=0)
        sv = {_num_text(c): int(k) for c, k in zip(st.cands, cand, strict=True) if c in sentinels and k}
        out = {k: int(v.sum()) for k, v in arr.items()}
        return {**out, "sentinel_values": sv, "stuck_runs": int(st.arr("stuck_runs")[:n_g].sum()),
                "longest_null_run": int(np.max(st.arr("null_run_max")[:n_g], initial=0))}

    def _text_arrays(self, st: TextState) -> dict[str, np.ndarray]:
        n_g = len(self.group_codes)
        sent = np.array([self._is_text_sentinel(st, t) for t in st.tokens] or [False], bool)
        tok = st.arr("tok")[:n_g]
        return {"nulls": st.arr("nulls")[:n_g], "sentinels": tok[:, sent].sum(axis=1),
                "invalid": st.arr("not_allowed")[:n_g], "unparseable": st.arr("unparseable")[:n_g],
                "stuck_rows": np.zeros(n_g, np.int64)}

    def _text_column(self, st: TextState) -> dict[str, Any]:
        n_g = len(self.group_codes)
        arr = self._text_arrays(st)
        tok = st.arr("tok")[:n_g].sum(axis=0)
        sv = {t: int(k) for t, k in zip(st.tokens, tok, strict=False) if k and self._is_text_sentinel(st, t)}
        return {**{k: int(v.sum()) for k, v in arr.items()}, "sentinel_values": sv, "stuck_runs": 0}

    def _is_text_sentinel(self, st: TextState, tok: str) -> bool:
        spec = self.schema.columns.get(st.name)
        return tok in [str(x) for x in (spec.sentinels if spec else [])] or self._text_sentinel(st, tok)

    def _text_sentinel(self, st: TextState, tok: str) -> bool:
        return self.schema.detect_sentinels and tok in TEXT_SENTINELS

    def _sketch(self, st: NumState, sentinels: list[float]) -> dict[str, Any]:
        """Quantiles, outliers and distinct values of a numeric column from its sketches."""
        qs = st.qs.copy()
        lo, hi, _ = self.ranges[st.name]
        counts = st.arr("cand")[: len(self.group_codes)].sum(axis=0)
        tmp = qs_new()
        for c, k in zip(st.cands, counts, strict=True):
            if c not in sentinels and k:
                tmp[:] = 0
                qs_add(tmp, np.array([c]))
                qs += tmp * k
        n = int(qs.sum())
        out: dict[str, Any] = {"distinct_est": round(hll_estimate(st.registers), 1),
                               "distinct_rel_error": round(hll_error(st.registers), 4)}
        if n == 0:
            return {**out, "quantiles": None, "outliers": 0, "outliers_uncertain": 0}
        qv = qs_quantile(qs, np.array(_QUANTILES))
        out["quantiles"] = {f"p{q * 100:g}": float(x) for q, x in zip(_QUANTILES, qv, strict=True)}
        out["quantile_rel_error"] = QS_ALPHA
        q1, q3 = float(qv[2]), float(qv[4])
        iqr = q3 - q1
        f_lo, f_hi = q1 - OUTLIER_IQR * iqr, q3 + OUTLIER_IQR * iqr
        b_lo, b_hi, _ = qs_representatives()
        lows = np.concatenate([b_lo, -b_hi])
        highs = np.concatenate([b_hi, -b_lo])
        lo_e = np.minimum(lows, highs)
        hi_e = np.maximum(lows, highs)
        outside = (hi_e <= f_lo) | (lo_e > f_hi)
        straddle = ((lo_e < f_lo) & (f_lo < hi_e)) | ((lo_e <= f_hi) & (f_hi < hi_e))
        out["outliers"] = int(qs[outside].sum())
        out["outliers_uncertain"] = int(qs[straddle].sum())
        out["outlier_fences"] = [f_lo, f_hi]
        return out

    def report(self, *, out_of_order_file: np.ndarray | None = None) -> dict[str, Any]:
        """The profile as a JSON-ready dict (see docs/utilisation.md for the fields)."""
        self.drain()
        enabled = gc.isenabled()
        gc.disable()  # tens of thousands of small acyclic dicts: a full collection would cost more than building them
        try:
            return self._report(out_of_order_file)
        finally:
            if enabled:
                gc.enable()

    def _report(self, out_of_order_file: np.ndarray | None) -> dict[str, Any]:
        n_g = len(self.group_codes)
        cols: dict[str, Any] = {}
        for name in self.names:
            if name in self.num:
                st = self.num[name]
                c = self._num_column(st)
                c.update(self._sketch(st, self.sentinels_of(st)))
                lo, hi, src = self.ranges[name]
                c["range"] = None if src == "none" else [lo, hi]
                c["range_from"] = src
                c["min"] = None if not np.isfinite(st.ext[0]) else float(st.ext[0])
                c["max"] = None if not np.isfinite(st.ext[1]) else float(st.ext[1])
            else:
                st = self.text[name]
                c = self._text_column(st)
                c["distinct_est"] = round(hll_estimate(st.registers), 1)
                c["distinct_rel_error"] = round(hll_error(st.registers), 4)
                if self.types[name] == "str" and name != self.time_col:
                    c["classes"] = {k: v for k, v in st.classes.items() if v}
                    c["mixed_types"] = len(c["classes"]) > 1
            c["type"] = self.types[name]
            bad = c["nulls"] + c["sentinels"] + c["invalid"] + c["unparseable"]
            c["completeness"] = 1.0 - (c["nulls"] + c["sentinels"] + c["unparseable"]) / self.rows if self.rows else 1.0
            c["valid_share"] = 1.0 - bad / self.rows if self.rows else 1.0
            cols[name] = c
        out: dict[str, Any] = {"rows": self.rows, "columns": cols,
                               "duplicate_rows": self.dup_rows_timed + self.dup_rows_untimed}
        if self.schema.key:
            kd = self.key_dups + (self.timeline_dups() if self.key_by_time else 0)
            out["key"] = {"columns": self.schema.key, "duplicates": kd, "unique": kd == 0}
        if self.time_col is not None:
            whole, per = self._timeline(out_of_order_file)
            out["time"] = whole
        else:
            per = {}
        if self.group_col is not None:
            names = self._group_names()
            per_col = {}
            for name in self.names:
                arr = (self._num_arrays(self.num[name], self.sentinels_of(self.num[name])) if name in self.num
                       else self._text_arrays(self.text[name]))
                fields = self._FIELDS
                per_col[name] = [dict(zip(fields, v, strict=True))
                                 for v in zip(*[arr[k].tolist() for k in fields], strict=True)]  # one per group
            rows = self.G["rows"][:n_g].tolist()
            groups = {names[gi]: {"rows": rows[gi], "columns": {name: per_col[name][gi] for name in self.names},
                                  **({"time": per[names[gi]]} if per else {})} for gi in range(n_g)}
            out["groups"] = groups
            out["group_col"] = self.group_col
        if self.funnel is not None:
            out["funnel"] = self.funnel.report()
        out["sketches"] = {"distinct": f"HyperLogLog, 2^{HLL_P} registers, standard error {hll_error(new_registers()):.2%}",
                           "quantiles": f"log-bucket sketch, relative error <= {QS_ALPHA:.2%}"}
        out["findings"] = self._findings(out)
        return out

    def timeline_dups(self) -> int:
        """Rows at their group's previous time (duplicated times), all groups."""
        return int(self.G["dups"][: len(self.group_codes)].sum())

    def _findings(self, rep: dict[str, Any]) -> list[str]:
        f = []
        if "key" in rep and not rep["key"]["unique"]:
            f.append(f"key {rep['key']['columns']} is not unique: {rep['key']['duplicates']:,} rows repeat an earlier key")
        for name, c in rep["columns"].items():
            spec = self.schema.columns.get(name)
            if spec is not None and not spec.nullable and c["nulls"]:
                f.append(f"column {name!r} is declared not nullable but has {c['nulls']:,} nulls")
            if c.get("mixed_types"):
                f.append(f"column {name!r} mixes cell types {c['classes']}")
        return f

    def bin_table(self) -> pl.DataFrame:
        """Per (group, hour): rows and missing cells (nulls and sentinels), for the plot."""
        keys, counts = self.bins.items()
        ncol = len(self.names)
        g = keys >> 43
        hour = ((keys >> 20) & ((1 << 23) - 1)) - (1 << 22) + (self.first_t or 0) // HOUR_US
        col = (keys >> 5) & ((1 << 15) - 1)
        hit = keys & 31
        keep = col == ncol
        missing = np.zeros(keys.size, bool)
        for j, name in enumerate(self.names):
            m = (col == j) & (hit == 1)
            if name in self.num:
                st = self.num[name]
                sent = set(self.sentinels_of(st))
                for ci, c in enumerate(st.cands):
                    if c in sent:
                        m |= (col == j) & (hit == 2 + ci)
            elif name in self.text:
                st = self.text[name]
                for ti, tok in enumerate(st.tokens):
                    if self._is_text_sentinel(st, tok):
                        m |= (col == j) & (hit == 2 + ti)
            missing |= m
        df = pl.DataFrame({"g": g, "hour": hour, "rows": np.where(keep, counts, 0),
                           "missing": np.where(missing, counts, 0)})
        names = self._group_names()
        return (df.group_by("g", "hour").agg(pl.col("rows").sum(), pl.col("missing").sum()).sort("g", "hour")
                .with_columns(pl.col("g").map_elements(lambda x: names[x], return_dtype=pl.String).alias("group")))


def _iso(us: int) -> str:
    import datetime as dt

    return (dt.datetime(1970, 1, 1) + dt.timedelta(microseconds=int(us))).isoformat(sep=" ")


def _num_text(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))
