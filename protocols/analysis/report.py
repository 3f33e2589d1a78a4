"""Self-contained HTML report of one or more runs: protocol plots, extraction tables, fit plots.

Every image is embedded as a base64 PNG, so the single file opens in any browser, offline. The
page is rendered with a Jinja2 template (autoescaped); per run it shows the run's metadata and
parameters, the protocol's own plot, the extracted quantities (:mod:`protocols.analysis.extract`) and,
where the run has them, the potentiation fit and the cumulative-probability heat map of dG
against G (Fig. 3F), the retention fit, and the per-array area table.
"""

from __future__ import annotations

import base64
import io
import math
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
import pandas as pd

from hil import __version__
from hil.protocol import get_protocol
from hil.store import Store
from protocols.analysis.extract import QUANTITIES, Analysis, analyze
from protocols.plots import use_agg

TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>{{ title }}</title>
<style>
 body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
 h1 { font-size: 1.5em; } h2 { font-size: 1.2em; border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 2em; }
 table { border-collapse: collapse; margin: .5em 0 1em; font-size: .9em; }
 td, th { border: 1px solid #ddd; padding: .25em .6em; text-align: left; }
 th { background: #f4f4f4; } td.num { text-align: right; font-family: ui-monospace, monospace; }
 img { max-width: 100%; border: 1px solid #eee; margin: .5em 0; }
 .meta { color: #555; font-size: .9em; } code { background: #f4f4f4; padding: 0 .2em; }
</style></head><body>
<h1>{{ title }}</h1>
<p class="meta">rram-hil {{ version }}, {{ created }}, database <code>{{ db }}</code></p>
<ul>{% for r in runs %}<li><a href="#run-{{ r.id }}">run {{ r.id }}: {{ r.protocol }}</a> ({{ r.status }})</li>{% endfor %}</ul>
{% for r in runs %}
<h2 id="run-{{ r.id }}">Run {{ r.id }}: {{ r.protocol }}</h2>
<p class="meta">status <b>{{ r.status }}</b>{% if r.error %} ({{ r.error }}){% endif %}; station {{ r.station }} ({{ r.backend }});
seed {{ r.seed }}; started {{ r.started }}; {{ r.readings }} readings</p>
<details><summary>parameters</summary><table>{% for k, v in r.parameters %}<tr><th>{{ k }}</th><td>{{ v }}</td></tr>{% endfor %}</table></details>
{% for img in r.images %}<figure><img alt="{{ img.caption }}" src="data:image/png;base64,{{ img.data }}"><figcaption class="meta">{{ img.caption }}</figcaption></figure>{% endfor %}
<h3>Extracted quantities</h3>
<table><tr><th>quantity</th><th>value</th><th>unit</th><th>meaning</th></tr>
{% for q in r.summary %}<tr><td><code>{{ q.key }}</code></td><td class="num">{{ q.value }}</td><td>{{ q.unit }}</td><td>{{ q.text }}</td></tr>{% endfor %}
</table>
{% for t in r.tables %}<h3>{{ t.name }}</h3>{{ t.html | safe }}{% endfor %}
{% endfor %}
</body></html>
"""


def fmt_value(value: Any) -> str:
    """A number in 4 significant digits (integers and text as they are)."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        v = float(value)
        return "nan" if not math.isfinite(v) else f"{v:.4g}"
    return str(value)


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _fit_figures(result: Analysis) -> list[dict[str, str]]:
    plt = use_agg()
    images = []
    curve = result.tables.get("curve")
    heat = result.tables.get("heatmap")
    if curve is not None and "pulse" in curve and heat is not None and not heat.empty:
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.3))
        ax1.plot(curve["pulse"], curve["g_mean_S"] * 1e6, "o", ms=3, label="potentiation, mean")
        ax1.plot(
            curve["pulse"],
            curve["g_fit_S"] * 1e6,
            "-",
            label=f"fit: n = {result.summary['n_states']:.3g}, nu = {result.summary['nonlinearity']:.3g}",
        )
        if "g_depression_mean_S" in curve:
            ax1.plot(curve["pulse"], curve["g_depression_mean_S"] * 1e6, "s", ms=3, label="depression, mean")
            ax1.plot(curve["pulse"], curve["g_depression_fit_S"] * 1e6, "-", label="fit")
        ax1.set(xlabel="pulse in branch", ylabel="conductance (uS)", title="mean curves and fits")
        ax1.legend(fontsize=8)
        g = heat.columns.to_numpy(float) * 1e6
        dg = heat.index.to_numpy(float) * 1e6
        mesh = ax2.pcolormesh(g, dg, heat.to_numpy(), shading="nearest", cmap="viridis", vmin=0, vmax=1)
        fig.colorbar(mesh, ax=ax2, label="cumulative probability")
        ax2.set(xlabel="G before the pulse (uS)", ylabel="dG (uS)", title="P(dG <= y | G) (Fig. 3F)")
        fig.tight_layout()
        images.append(
            {
                "data": _png(fig),
                "caption": "Potentiation fit, and the cumulative-probability heat map of dG against G (Fig. 3F).",
            }
        )
        plt.close(fig)
    if curve is not None and "t_s" in curve:
        fig, ax = plt.subplots(figsize=(8, 4))
        t = curve["t_s"].to_numpy(float)
        shown = np.maximum(t, t[t > 0].min() / 3 if (t > 0).any() else 1e-3)
        ax.semilogx(shown, curve["g_mean_S"] * 1e6, "o", ms=3, label="mean of devices")
        ax.semilogx(
            shown,
            curve["g_fit_S"] * 1e6,
            "-",
            label=f"fit, tau = {result.summary.get('retention_tau_s') or float('nan'):.3g} s",
        )
        ax.set(xlabel="time since programming (s)", ylabel="conductance (uS)", title="retention fit")
        ax.legend(fontsize=8)
        fig.tight_layout()
        images.append(
            {
                "data": _png(fig),
                "caption": "Retention fit: mean conductance of the devices and the exponential fit.",
            }
        )
        plt.close(fig)
    return images


def _table_html(df: pd.DataFrame, max_rows: int = 40) -> str:
    shown = df.head(max_rows)
    formatted = shown.apply(lambda col: col.map(fmt_value)) if not shown.empty else shown
    body = formatted.to_html(index=False, escape=True, border=0)
    if len(df) > max_rows:
        body += f"<p class='meta'>first {max_rows} of {len(df)} rows</p>"
    return body


def run_section(store: Store, run_id: int) -> dict[str, Any]:
    """Everything the template shows for one run."""
    info = store.run(run_id)
    result = analyze(store, run_id)
    images: list[dict[str, str]] = []
    try:
        proto = get_protocol(info.protocol)
    except ValueError:
        proto = None
    if proto is not None:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "plot.png"
            written = proto.plot(store, run_id, path)
            if written is not None:
                images.append(
                    {
                        "data": base64.b64encode(written.read_bytes()).decode("ascii"),
                        "caption": f"{info.protocol}: the protocol's plot.",
                    }
                )
    images += _fit_figures(result)
    summary = [
        {
            "key": k,
            "value": fmt_value(v),
            "unit": QUANTITIES.get(k, ("", ""))[0],
            "text": QUANTITIES.get(k, ("", ""))[1],
        }
        for k, v in result.summary.items()
        if v is not None
    ]
    tables = []
    for name in ("per_array", "per_device", "drift", "window"):
        table = result.tables.get(name)
        if table is not None and not table.empty:
            tables.append({"name": name.replace("_", " "), "html": _table_html(table)})
    return {
        "id": info.id,
        "protocol": info.protocol,
        "status": info.status,
        "error": info.error,
        "station": info.station_name,
        "backend": info.backend,
        "seed": info.seed,
        "started": str(info.started_at)[:19],
        "readings": result.summary.get("readings"),
        "parameters": sorted((k, fmt_value(v)) for k, v in info.parameters.items()),
        "images": images,
        "summary": summary,
        "tables": tables,
    }


def build_report(store: Store, run_ids: Sequence[int], title: str | None = None) -> str:
    """The HTML text of the report on ``run_ids``."""
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    template = env.from_string(TEMPLATE)
    runs = [run_section(store, r) for r in run_ids]
    return template.render(
        title=title
        or f"rram-hil report: run{'s' if len(runs) > 1 else ''} {', '.join(str(r) for r in run_ids)}",
        version=__version__,
        created=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        db=store.url,
        runs=runs,
    )
