"""Reports: Markdown and self-contained HTML with plots; strings from data are escaped."""

from __future__ import annotations

import base64
import json

from click.testing import CliRunner

from uda.cli.main import cli
from uda.harness.report import md_escape, write_report
from uda.harness.results import SCHEMA, SCHEMA_VERSION

EVIL = "<script>alert('x')</script>|*bold* $x$"


def _results() -> dict:
    cases = []
    for task in ("route", EVIL):
        for engine in ("polars", "dask"):
            for scale, rows in (("tiny", 10_000), ("small", 100_000)):
                wall = rows / 1e6 * (1.3 if engine == "dask" else 1.0)
                m = {"wall_s": wall, "cpu_s": wall, "peak_rss_bytes": 2**27 + rows * 100,
                     "rows_per_s": rows / wall}
                cases.append({"id": f"{task}/{engine}/{scale}", "task": task, "engine": engine,
                              "scheduler": "threads" if engine == "dask" else None, "scale": scale,
                              "status": "ok", "message": "", "rows_in": rows, "cold": m, "warm": [m, m],
                              "quality": {"relative_gap": 1e-4 * rows / 1e4},
                              "summary": {"wall_s_median": wall, "wall_s_min": wall, "wall_s_max": wall,
                                          "cpu_s_median": wall, "peak_rss_bytes": m["peak_rss_bytes"],
                                          "rows_per_s": rows / wall, "n_warm": 2}})
    cases.append({"id": "flow/polars/tiny", "task": "flow", "engine": "polars", "scheduler": None,
                  "scale": "tiny", "status": "error", "message": EVIL, "cold": None, "warm": [],
                  "summary": None, "quality": {}})
    return {"schema": SCHEMA, "schema_version": SCHEMA_VERSION, "run_id": "r1",
            "created_utc": "2026-11-21T07:00:00+00:00", "suite": {"name": EVIL, "source": "test"},
            "machine": {"cpu_model": EVIL, "cores_logical": 2, "memory_bytes": 2**34},
            "packages": {"numpy": "2"}, "git": {"commit": "abc", "dirty": False},
            "datasets": {"tiny-seed1": {"scale": "tiny", "rows": 10, "bytes": 100,
                                        "manifest_sha256": "f" * 64}},
            "cases": cases}


def test_report_writes_markdown_html_and_plots(tmp_path):
    paths = write_report(_results(), out_dir=tmp_path, stem="run")
    assert {"markdown", "html", "time", "memory", "throughput", "quality"} <= set(paths)
    page = paths["html"].read_text()
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert page.count("data:image/png;base64,") == len([k for k in paths if k not in ("markdown", "html")])
    png = base64.b64decode(page.split("data:image/png;base64,")[1].split('"')[0])
    assert png.startswith(b"\x89PNG")
    md = paths["markdown"].read_text()
    assert "<script>" not in md and md_escape(EVIL) in md
    assert "](run-time.png)" in md and (tmp_path / "run-time.png").read_bytes().startswith(b"\x89PNG")
    assert "error" in md and "Cases that did not pass" in md


def test_md_escape_keeps_table_cells_intact():
    assert md_escape("a|b\nc") == "a\\|b c"


def test_report_command(tmp_path):
    p = tmp_path / "run.json"
    res = _results()
    res["cases"] = [c for c in res["cases"] if c["task"] == "route" and c["engine"] == "polars"]
    p.write_text(json.dumps(res))
    res = CliRunner().invoke(cli, ["report", str(p), "--html"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "run.md").is_file() and (tmp_path / "run.html").is_file()
    assert str(tmp_path / "run.md") in res.output
