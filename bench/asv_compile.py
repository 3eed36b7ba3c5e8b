"""asv: Numba compile time (empty cache) and cache-load time of each kernel family, in fresh processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

#: Kernel family -> code run in a fresh interpreter; its first call is what is timed.
#: ``setup`` builds tiny inputs (imports only), ``first_call`` triggers compilation.
FAMILIES = {
    "paths": (
        "import numpy as np\n"
        "from uda.kernels.paths import csr_from_links, dijkstra_many\n"
        "ip, hd, sl = csr_from_links(3, np.array([0, 1]), np.array([1, 2]))\n"
        "w = np.ones(2)\n",
        "dijkstra_many(ip, hd, w, np.array([0]))\n",
    ),
    "assign": (
        "from uda.kernels.assign import warm_up\n",
        "warm_up()\n",
    ),
    # up to 9825fce: flow's panel evaluator (the one evaluator's same work, see asv_flow.py)
    "forecast": (
        "import numpy as np\n"
        "try:\n"
        "    from uda.forecasting.evaluation import evaluate\n"
        "    from uda.forecasting.panel import Panel\n"
        "    from uda.forecasting.registry import MODELS\n"
        "except ImportError:\n"
        "    from uda.forecast import MODELS, Panel\n"
        "    from uda.tasks.flow import evaluate_panel as evaluate\n"
        "y = np.random.default_rng(0).uniform(1, 2, (3, 288 * 8))\n"
        "p = Panel(y, ['a', 'b', 'c'], np.datetime64('2026-03-02T00:00'), 300)\n",
        "evaluate(p, models=','.join(MODELS), horizons=[1])\n",
    ),
    "wqi": (
        "import numpy as np\n"
        "from uda.kernels.wqi import ccme_wqi, exceedance_episodes, weighted_arithmetic_wqi\n"
        "v = np.ones((4, 2)); o = np.array([0, 4]); lo = np.zeros(2); hi = np.full(2, 2.0)\n"
        "ts = np.arange(4, dtype=np.int64)\n",
        "ccme_wqi(v, o, lo, hi); weighted_arithmetic_wqi(v, o, lo, hi)\n"
        "exceedance_episodes(ts, v, o, lo, hi, 2)\n",
    ),
    "detect": (
        "import numpy as np\n"
        "from uda.kernels.detect import alarm_runs, cusum, multivariate_score, rolling_baseline\n"
        "v = np.ones((8, 2)); o = np.array([0, 8])\n",
        "rolling_baseline(v, o, 4, 2, np.ones(2)); multivariate_score(v, np.ones(2), 3.0)\n"
        "cusum(v, o, 0.5, 3.0); alarm_runs(np.ones(8, np.bool_), o, 1)\n",
    ),
    "generators": (
        "from uda.city import build_city\n"
        "try:\n"
        "    from uda.synth.plan import Plan\n"
        "except ImportError:  # up to 9825fce\n"
        "    from uda.generate import _Plan as Plan\n"
        "from uda.scales import resolve_scale\n"
        "import numba\n"
        "p = Plan(build_city(resolve_scale('tiny', sensors=4, days=1, cards=10), 1), 1)\n",
        "p.traffic_chunk(0, 1); p.water_chunk(0, 1); p.passenger_chunk(0, 1)\n",
    ),
}

_TIMED = (
    "import json, time\n"
    "{setup}"
    "t0 = time.perf_counter()\n"
    "{first_call}"
    "print(json.dumps({{'seconds': time.perf_counter() - t0}}))\n"
)


def first_call_seconds(family: str, cache_dir: str) -> float:
    """Seconds of the family's first kernel calls in a fresh interpreter using ``cache_dir``."""
    setup, first_call = FAMILIES[family]
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir, PYTHONHASHSEED="0")
    out = subprocess.run([sys.executable, "-c", _TIMED.format(setup=setup, first_call=first_call)],
                         env=env, capture_output=True, text=True, check=True, timeout=900)
    return float(json.loads(out.stdout.strip().splitlines()[-1])["seconds"])


class NumbaCompile:
    """Compile from scratch (empty ``NUMBA_CACHE_DIR``), then load from the cache just written."""

    params = [list(FAMILIES)]
    param_names = ["family"]
    timeout = 1200

    def setup_cache(self):
        results = {}
        for family in FAMILIES:
            with tempfile.TemporaryDirectory(prefix="uda-numba-") as cache:
                compile_s = first_call_seconds(family, cache)
                load_s = first_call_seconds(family, cache)
            results[family] = {"compile": compile_s, "cache_load": load_s,
                               "cache_files": len(list(Path(cache).rglob("*.nbc")))}
        return results

    def track_compile_seconds(self, results, family):
        return results[family]["compile"]

    track_compile_seconds.unit = "seconds"

    def track_cache_load_seconds(self, results, family):
        return results[family]["cache_load"]

    track_cache_load_seconds.unit = "seconds"
