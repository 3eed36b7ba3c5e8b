"""The DuckDB side of ``bench/bench_duckdb.py``: each stage's work written as SQL over the same Parquet files.

:class:`Duck` holds one DuckDB connection and one method per stage; each returns the answer in
the shape uda's function for that stage returns, so the runner can compare the two exactly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def files_sql(paths: list[Any]) -> str:
    """A DuckDB list literal of file paths (quotes doubled)."""
    return "[" + ", ".join("'" + str(p).replace("'", "''") + "'" for p in paths) + "]"


class Duck:
    """One DuckDB connection (``threads`` threads, UTC) and the SQL of every stage."""

    def __init__(self, threads: int):
        import duckdb

        self.con = duckdb.connect()
        self.con.execute(f"SET threads = {int(threads)}")
        self.con.execute("SET TimeZone = 'UTC'")

    def rows(self, sql: str) -> list[tuple]:
        return self.con.sql(sql).fetchall()

    def numpy(self, sql: str) -> dict[str, Any]:
        return self.con.sql(sql).fetchnumpy()

    def route_slots(self, files: list[Any], slot_minutes: int = 60):
        """``sensor_id, slot, n_obs, pace_sum, flow_sum`` as :func:`uda.tasks.route.sensor_slots_polars`."""
        import polars as pl

        sql = f"""
            SELECT sensor_id, ((hour(ts) * 60 + minute(ts)) // {int(slot_minutes)})::INTEGER AS slot,
                   count(*)::BIGINT AS n_obs, sum(3.6 / speed::DOUBLE) AS pace_sum,
                   sum(CASE WHEN flow IS NULL OR isnan(flow) THEN 0.0 ELSE flow::DOUBLE END) AS flow_sum
            FROM read_parquet({files_sql(files)})
            WHERE speed IS NOT NULL AND isfinite(speed) AND speed > 0
            GROUP BY ALL ORDER BY sensor_id, slot"""
        return pl.from_arrow(self.con.sql(sql).to_arrow_table())

    def pivot(self, files: list[Any], column: str = "flow"):
        """``(ids, Y, t0)`` as :func:`uda.tasks.flow.traffic_panel_polars`: the mean of a sensor's
        non-missing values in each 5-minute step of whole days from the first midnight."""
        import numpy as np

        from uda.tasks.flow import grid

        src = f"read_parquet({files_sql(files)})"
        lo, hi = self.rows(f"SELECT epoch_ms(min(ts)), epoch_ms(max(ts)) FROM {src}")[0]
        t0, n_time = grid(int(lo), int(hi), 300)
        ids = self.numpy(f"SELECT DISTINCT sensor_id FROM {src} ORDER BY 1")["sensor_id"].astype(np.int64)
        r = self.numpy(f"""
            SELECT sensor_id, (epoch_ms(ts) - {t0}) // 300000 AS step, avg({column}::DOUBLE) AS v
            FROM {src} WHERE {column} IS NOT NULL AND NOT isnan({column}) GROUP BY ALL""")
        sid, step, v = r["sensor_id"].astype(np.int64), np.asarray(r["step"]), np.asarray(r["v"])
        Y = np.full((ids.size, n_time), np.nan)
        ok = (step >= 0) & (step < n_time)
        Y[np.searchsorted(ids, sid[ok]), step[ok]] = v[ok]
        return ids, Y, t0

    def read_long(self, path: Path, *, id_col: str, time_col: str, value_col: str, interval_s: int):
        """``(ids, Y)`` as :func:`uda.io.long.read_long` with an interval given: series in order
        of first appearance, grid from the earliest time, an error on off-grid times or repeats."""
        import numpy as np

        from uda.errors import UserError

        src = f"read_parquet('{str(path).replace(chr(39), chr(39) * 2)}', file_row_number = true)"
        self.con.execute(f"""
            CREATE OR REPLACE TEMP TABLE long_rows AS
            WITH s AS (SELECT coalesce(CAST({id_col} AS VARCHAR), '(null)') AS id, epoch({time_col})::BIGINT AS t,
                              {value_col}::DOUBLE AS v, file_row_number AS r FROM {src}),
                 k AS (SELECT id, (row_number() OVER (ORDER BY min(r)) - 1)::BIGINT AS k FROM s GROUP BY id),
                 g AS (SELECT min(t) AS t0 FROM s)
            SELECT k.k, (s.t - g.t0) AS off, s.v, k.id FROM s JOIN k USING (id), g""")
        off_grid, length, dups = self.rows(f"""
            SELECT count(*) FILTER (WHERE off % {interval_s} <> 0), max(off) // {interval_s} + 1,
                   count(*) - count(DISTINCT (k, off)) FROM long_rows""")[0]
        if off_grid or dups:
            msg = f"{path}: {off_grid} times off the {interval_s} s grid, {dups} repeated (series, time) rows"
            raise UserError(msg)
        ids = self.numpy("SELECT id FROM long_rows GROUP BY id, k ORDER BY k")["id"]
        r = self.numpy(f"SELECT k, off // {interval_s} AS step, v FROM long_rows")
        Y = np.full((ids.size, int(length)), np.nan)
        v = np.asarray(r["v"].filled(np.nan) if np.ma.isMaskedArray(r["v"]) else r["v"], dtype=np.float64)
        Y[np.asarray(r["k"]), np.asarray(r["step"])] = v
        self.con.execute("DROP TABLE long_rows")
        return [str(i) for i in ids], Y

    def read_wide(self, path: Path, *, time_col: str, interval_s: int):
        """``(ids, Y)`` as :func:`uda.io.wide.read_wide`: the series columns stacked on the grid of
        the time column (increasing, on the grid; absent steps NaN)."""
        import numpy as np

        from uda.errors import UserError

        cols = self.numpy(f"SELECT * FROM read_parquet('{str(path).replace(chr(39), chr(39) * 2)}')")
        t = cols.pop(time_col).astype("datetime64[s]").astype(np.int64)
        secs = t - t[0]
        if (np.diff(secs) <= 0).any() or (secs % interval_s).any():
            msg = f"{path}: timestamps not increasing on the {interval_s} s grid"
            raise UserError(msg)
        pos = secs // interval_s
        ids = list(cols)
        Y = np.full((len(ids), int(pos[-1]) + 1), np.nan)
        for k, c in enumerate(ids):
            col = cols[c]
            Y[k, pos] = col.filled(np.nan) if np.ma.isMaskedArray(col) else col
        Y[np.isinf(Y)] = np.nan
        return ids, Y

    def utilisation(self, ds: Any) -> dict[str, Any]:
        """Funnel counts, used rows per district and detector tallies of a standardised dataset."""

        from uda.contract import SPECS, TABLE_DEFECTS, start_ms_of
        from uda.contract import WATER_PARAMETERS as PARAMETERS
        from uda.tasks.utilisation import DETECTORS

        p = ds.params
        start, days = start_ms_of(p["start"]), int(p["days"])
        city = {"traffic": ("sensors", "sensor_id"), "taps": ("stations", "station_id"),
                "water": ("water_sites", "site_id")}
        keys_of = {"traffic": "sensors", "water": "water_sites", "taps": "stations"}
        for name, col in city.values():
            self.con.execute(f"CREATE OR REPLACE TEMP VIEW city_{name} AS SELECT {col}::BIGINT AS id "
                             f"FROM read_parquet({files_sql(ds.files(name))})")
        defects = f"read_parquet({files_sql(ds.files('defects'))})"
        used_rule = {
            "traffic": "(((isfinite(speed) AND speed > 0) AND sensor_id IN (SELECT id FROM city_sensors)) "
                       "OR NOT isnan(flow) OR NOT isnan(speed))",
            "taps": "station_id IN (SELECT id FROM city_stations)",
            "water": "(site_id IN (SELECT id FROM city_water_sites) AND ("
                     + " OR ".join(f"NOT isnan({c})" for c in PARAMETERS) + "))",
        }
        need = {"traffic": ["sensor_id", "flow", "speed"], "taps": ["station_id"], "water": ["site_id", *PARAMETERS]}
        out: dict[str, Any] = {"counts": {}, "used": {}, "detectors": {}}
        for table in ("traffic", "taps", "water"):
            if not (ds.has(table) and ds.has(f"{table}_rejects")):
                continue
            spec = SPECS[table]
            files = [*ds.files(table), *ds.files(f"{table}_rejects")]
            flags = ("flag_syntax", "flag_range", "flag_duplicate", "flag_stuck", "flag_unit", "flag_reference",
                     "flag_skew", "flag_late", "flag_drift")
            self.con.execute(f"""
                CREATE OR REPLACE TEMP TABLE rows_{table} AS
                SELECT {', '.join(need[table])}, district_id, {spec.key}::BIGINT AS key, epoch_ms(ts) - skew_ms AS tsc,
                       {', '.join(f'coalesce({f}, false) AS {f[5:]}' for f in flags)}
                FROM read_parquet({files_sql(files)}, union_by_name = true)""")
            bad = "syntax OR range OR duplicate OR stuck"
            counts = self.rows(f"""
                SELECT district_id, count(*), count(*) FILTER (WHERE NOT ({bad})),
                       count(*) FILTER (WHERE NOT ({bad} OR unit)),
                       count(*) FILTER (WHERE NOT ({bad} OR unit OR reference)),
                       count(*) FILTER (WHERE NOT ({bad} OR unit OR reference) AND coalesce({used_rule[table]}, false))
                FROM rows_{table} GROUP BY district_id ORDER BY district_id""")
            out["counts"][table] = {str(d): {"collected": a, "valid": b, "standardised": c, "integrated": e}
                                    for d, a, b, c, e, _ in counts}
            out["used"][table] = {int(d): u for d, *_, u in counts if u}
            kinds = [k for k in TABLE_DEFECTS[table] if DETECTORS[k] is not None]
            pred = " UNION ALL ".join(
                f"SELECT '{k}' AS kind, key, tsc FROM rows_{table} WHERE NOT syntax AND {DETECTORS[k][5:]}"
                for k in kinds)
            det = self.rows(f"""
                WITH p AS (SELECT DISTINCT kind, key, tsc AS t FROM ({pred})),
                     t AS (SELECT DISTINCT type AS kind, key, epoch_ms(ts) AS t FROM {defects}
                           WHERE "table" = '{table}' AND type IN ({', '.join(f"'{k}'" for k in kinds)}))
                SELECT kind, count(*) FILTER (WHERE p.key IS NOT NULL AND t.key IS NOT NULL),
                       count(*) FILTER (WHERE t.key IS NULL), count(*) FILTER (WHERE p.key IS NULL)
                FROM p FULL OUTER JOIN t USING (kind, key, t) GROUP BY kind""")
            res = {k: {"tp": 0, "fp": 0, "fn": 0} for k in kinds}
            res.update({k: {"tp": tp, "fp": fp, "fn": fn} for k, tp, fp, fn in det})
            if "missing" in TABLE_DEFECTS[table]:
                step = spec.interval_s * 1000
                n_slots = days * 86_400_000 // step
                keys = f"city_{keys_of[table]}"
                n_keys = self.rows(f"SELECT count(DISTINCT id) FROM {keys}")[0][0]
                tp, n_recv, true_n = self.rows(f"""
                    WITH recv AS (SELECT DISTINCT key, (tsc - {start} + {step // 2}) // {step} AS slot
                                  FROM rows_{table}
                                  WHERE NOT syntax AND key IN (SELECT id FROM {keys})
                                    AND tsc - {start} + {step // 2} >= 0
                                    AND (tsc - {start} + {step // 2}) // {step} < {n_slots}),
                         tr AS (SELECT key, epoch_ms(ts) - {start} AS rel FROM {defects}
                                WHERE "table" = '{table}' AND type = 'missing'),
                         hit AS (SELECT DISTINCT key, rel // {step} AS slot FROM tr
                                 WHERE key IN (SELECT id FROM {keys}) AND rel % {step} = 0 AND rel >= 0
                                   AND rel < {n_slots * step})
                    SELECT (SELECT count(*) FROM hit ANTI JOIN recv USING (key, slot)),
                           (SELECT count(*) FROM recv), (SELECT count(DISTINCT (key, rel)) FROM tr)""")[0]
                n_pred = n_keys * n_slots - n_recv
                res["missing"] = {"tp": tp, "fp": n_pred - tp, "fn": true_n - tp}
            out["detectors"][table] = res
            self.con.execute(f"DROP TABLE rows_{table}")
        return out
