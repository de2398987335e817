"""The monitor's HTML report: one self-contained file, plots drawn as inline SVG.

No external scripts, styles or fonts (it must open offline, from an S3 object or
an e-mail attachment), and no plotting library: a few bar and line charts are
simpler to draw as SVG than to ship a charting runtime in the Lambda bundle.
The one inline script only makes the drift table sortable.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

from mlsys.monitoring.monitor import Distribution, MonitorReport, Quality, VersionReport

BASELINE_COLOUR = "#8da0cb"
LIVE_COLOUR = "#fc8d62"
DRIFT_COLOUR = "#d62728"
IMPORTANCE_COLOUR = "#66a61e"

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#222}
h1{font-size:22px}h2{font-size:18px;margin-top:32px}h3{font-size:14px;margin:8px 0}
table{border-collapse:collapse;margin:12px 0}th,td{border:1px solid #ccc;padding:4px 8px;
font-size:13px;text-align:right}th{background:#f3f3f3;cursor:pointer}td.name{text-align:left}
tr.drift td{background:#fde0dd}.plots{display:flex;flex-wrap:wrap;gap:16px}
p.warning{background:#fff4ce;border-left:4px solid #e0a800;padding:6px 10px}
figure{margin:0;border:1px solid #e5e5e5;padding:8px}figcaption{font-size:12px;color:#555}
.legend span{display:inline-block;width:10px;height:10px;margin:0 4px 0 12px}
svg text{font-size:10px;fill:#444}
"""

SCRIPT = """
document.querySelectorAll("table.sortable th").forEach(function (th, column) {
  th.addEventListener("click", function () {
    var body = th.closest("table").tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var key = function (row) {
      var text = row.cells[column].textContent;
      var number = parseFloat(text);
      return isNaN(number) ? text : number;
    };
    rows.sort(function (a, b) { return key(a) < key(b) ? 1 : key(a) > key(b) ? -1 : 0; });
    rows.forEach(function (row) { body.appendChild(row); });
  });
});
document.body.setAttribute("data-plots", String(document.querySelectorAll("svg.plot").length));
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _number(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}g}"


def _share(part: int, whole: int) -> str:
    return "-" if not whole else f"{part / whole:.1%}"


def render_html(report: MonitorReport, *, title: str = "mlsys model monitor") -> str:
    sections = [_version_section(v, report.threshold) for v in report.versions]
    body = "\n".join(sections) if sections else "<p>No predictions in this window.</p>"
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>{_e(title)}</title><style>{STYLE}</style></head><body>"
        f"<h1>{_e(title)}</h1>"
        f"<p>Window {_e(report.since)} to {_e(report.until)}. Drift: PSI above "
        f"{report.threshold:g} against the training baseline of each version.</p>"
        f"<div class='legend'>Distributions:<span style='background:{BASELINE_COLOUR}'></span>"
        f"baseline (training)<span style='background:{LIVE_COLOUR}'></span>live</div>"
        f"{_drift_table(report)}{body}<script>{SCRIPT}</script></body></html>\n"
    )


def _drift_table(report: MonitorReport) -> str:
    rows = []
    for version in report.versions:
        entries: list[tuple[str, Distribution | None]] = list(version.features.items())
        entries.append(("(prediction)", version.prediction))
        peak = max([*version.importance.values(), 0.0])
        for name, dist in entries:
            drift = dist is not None and dist.drift
            count = dist.count if dist else 0
            rows.append(
                f"<tr class='{'drift' if drift else ''}'><td class='name'>{_e(version.version)}"
                f"</td><td class='name'>{_e(name)}</td>"
                f"<td>{count}</td><td>{_share(count, version.records)}</td>"
                f"<td>{_number(dist.psi if dist else None)}</td>"
                f"<td>{'yes' if drift else 'no'}</td>"
                f"<td>{_importance_cell(version.importance.get(name), peak)}</td></tr>"
            )
    quality_rows = "".join(
        f"<tr><td class='name'>{_e(v.version)}</td><td>{v.records}</td>"
        f"<td class='name'>{_e(v.quality.metric if v.quality else '-')}</td>"
        f"<td>{_number(v.quality.value if v.quality else None)}</td>"
        f"<td>{v.quality.n if v.quality else 0}</td>"
        f"<td>{_number(v.quality.offline if v.quality else None)}</td>"
        f"<td>{v.unmatched_feedback}</td></tr>"
        for v in report.versions
    )
    return (
        "<h2>Drift</h2><p>Importance: how much the version's holdout "
        "metric worsens when the feature is shuffled (permutation importance, from the model "
        "card); a drifted feature with a long bar is the one to look at.</p>"
        "<table class='sortable' id='drift'><thead><tr><th>version</th>"
        "<th>feature</th><th>coverage (records)</th><th>coverage (share)</th><th>PSI</th>"
        "<th>drift</th><th>importance</th></tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table><h2>Live quality</h2><table class='sortable' id='quality'><thead>"
        "<tr><th>version</th><th>records</th><th>metric</th><th>live</th><th>n</th>"
        "<th>offline (holdout)</th><th>unmatched feedback</th></tr></thead><tbody>"
        + quality_rows
        + "</tbody></table>"
    )


def _importance_cell(value: float | None, peak: float, *, width: int = 60) -> str:
    """The number, then a bar scaled to the version's most important feature."""
    if value is None:
        return "-"
    length = width * max(value, 0.0) / peak if peak > 0 else 0.0
    return (
        f"{_number(value, 3)} <svg class='importance' xmlns='http://www.w3.org/2000/svg' "
        f"width='{width}' height='10' role='img'><rect width='{length:.1f}' height='10' "
        f"fill='{IMPORTANCE_COLOUR}'/></svg>"
    )


def _version_section(version: VersionReport, threshold: float) -> str:
    # Most important features first: their drift is the one that can cost quality.
    ranked = sorted(version.features.items(), key=lambda i: -version.importance.get(i[0], 0.0))
    figures = [
        _figure(
            _feature_caption(name, dist, version.importance.get(name)), bar_chart(dist), dist.drift
        )
        for name, dist in ranked
    ]
    if version.prediction is not None:
        figures.insert(
            0,
            _figure(
                f"prediction distribution: PSI {_number(version.prediction.psi)}",
                bar_chart(version.prediction),
                version.prediction.drift,
            ),
        )
    if version.quality is not None:
        figures.insert(
            0, _figure(_quality_caption(version.quality), quality_chart(version.quality), False)
        )
    coverage = version.coverage
    warnings = "".join(f"<p class='warning'>{_e(w)}</p>" for w in coverage.warnings)
    return (
        f"<h2>Version {_e(version.version)}</h2><p>{version.records} records; "
        f"feature drift rests on {coverage.records} of them "
        f"({_share(coverage.records, version.records)}); "
        f"{len(version.drifted)} of {len(version.features)} features drifted "
        f"(PSI &gt; {threshold:g}).</p>{warnings}<div class='plots'>{''.join(figures)}</div>"
    )


def _feature_caption(name: str, dist: Distribution, importance: float | None) -> str:
    caption = f"{name}: PSI {_number(dist.psi)} on {dist.count}"
    return caption if importance is None else f"{caption}, importance {_number(importance, 3)}"


def _quality_caption(quality: Quality) -> str:
    return (
        f"live {quality.metric} over time: {_number(quality.value)} on {quality.n} "
        f"(holdout {_number(quality.offline)})"
    )


def _figure(caption: str, svg: str, drift: bool) -> str:
    style = f" style='border-color:{DRIFT_COLOUR}'" if drift else ""
    return f"<figure{style}>{svg}<figcaption>{_e(caption)}</figcaption></figure>"


def bar_chart(dist: Distribution, *, height: int = 190) -> str:
    """Grouped bars, baseline vs live share per bucket."""
    n = max(len(dist.labels), 1)
    group = max(14, min(40, 420 // n))
    left, bottom, top = 34, 62, 10
    width = left + group * n + 50
    plot_h = height - bottom - top
    peak = max([*dist.baseline, *dist.live, 1e-9])
    parts = [
        f"<svg class='plot' xmlns='http://www.w3.org/2000/svg' width='{width}' "
        f"height='{height}' role='img'><title>{_e(', '.join(dist.labels))}</title>",
        f"<line x1='{left}' y1='{top + plot_h}' x2='{width - 5}' y2='{top + plot_h}' "
        "stroke='#999'/>",
        f"<text x='2' y='{top + 8}'>{peak:.0%}</text><text x='2' y='{top + plot_h}'>0</text>",
    ]
    bar = (group - 4) / 2
    for i, label in enumerate(dist.labels):
        x = left + i * group + 2
        for j, (share, colour) in enumerate(
            ((dist.baseline[i], BASELINE_COLOUR), (dist.live[i], LIVE_COLOUR))
        ):
            h = plot_h * share / peak
            parts.append(
                f"<rect x='{x + j * bar:.1f}' y='{top + plot_h - h:.1f}' width='{bar:.1f}' "
                f"height='{h:.1f}' fill='{colour}'><title>{_e(label)}: {share:.1%}</title></rect>"
            )
        short = label if len(label) <= 10 else label[:9] + "…"
        parts.append(
            f"<text transform='translate({x + bar:.1f},{top + plot_h + 6}) rotate(45)'>"
            f"{_e(short)}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def quality_chart(quality: Quality, *, width: int = 380, height: int = 170) -> str:
    """Live metric per time bucket (equal numbers of joined predictions), and the
    holdout score as a dashed line."""
    points = [(i, p.value) for i, p in enumerate(quality.over_time) if p.value is not None]
    values = [v for _, v in points] + ([quality.offline] if quality.offline is not None else [])
    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    if high - low < 1e-9:
        low, high = low - 0.5, high + 0.5
    left, bottom, top = 44, 24, 10
    plot_w, plot_h = width - left - 10, height - bottom - top
    count = max(len(quality.over_time) - 1, 1)

    def xy(i: float, v: float) -> tuple[float, float]:
        return left + plot_w * i / count, top + plot_h * (high - v) / (high - low)

    parts = [
        f"<svg class='plot' xmlns='http://www.w3.org/2000/svg' width='{width}' "
        f"height='{height}' role='img'><title>live {_e(quality.metric)}</title>",
        f"<line x1='{left}' y1='{top + plot_h}' x2='{width - 10}' y2='{top + plot_h}' "
        "stroke='#999'/>",
        f"<text x='2' y='{top + 8}'>{high:.3g}</text>",
        f"<text x='2' y='{top + plot_h}'>{low:.3g}</text>",
    ]
    if quality.offline is not None:
        _, y = xy(0, quality.offline)
        parts.append(
            f"<line x1='{left}' y1='{y:.1f}' x2='{left + plot_w}' y2='{y:.1f}' "
            f"stroke='{BASELINE_COLOUR}' stroke-dasharray='4 3'><title>holdout</title></line>"
        )
    coords = [xy(i, v) for i, v in points]
    if coords:
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
        parts.append(
            f"<polyline points='{path}' fill='none' stroke='{LIVE_COLOUR}' stroke-width='2'/>"
        )
        parts.extend(
            f"<circle cx='{x:.1f}' cy='{y:.1f}' r='3' fill='{LIVE_COLOUR}'/>" for x, y in coords
        )
    labels: Sequence[str] = [p.until[:16] for p in quality.over_time]
    if labels:
        parts.append(
            f"<text x='{left}' y='{height - 6}'>{_e(quality.over_time[0].since[:16])}</text>"
        )
        parts.append(
            f"<text x='{width - 10}' y='{height - 6}' text-anchor='end'>{_e(labels[-1])}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)
