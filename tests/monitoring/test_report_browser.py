"""The HTML report in a real headless Chromium: it renders offline, without console
messages, with one plot per feature, the prediction distribution and live quality."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mlsys.monitoring.report import render_html
from mlsys.registry import ModelRegistry
from tests.monitoring.browser import render
from tests.monitoring.support import (
    Trained,
    make_api,
    monitor,
    open_log,
    post,
    records,
    send_batches,
    shifted,
)


@pytest.fixture(scope="module")
def report_file(regressor: Trained, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("report")
    uri = f"sqlite:///{root}/log.sqlite3"
    api = make_api(regressor, uri)
    features = regressor.features()
    send_batches(api, records(features.iloc[:600]), prefix="a")
    rows = records(shifted(features.iloc[600:900], "b", 2.0))
    send_batches(api, rows, prefix="s")
    actual = regressor.frame["y"].iloc[600:900].tolist()
    items = [
        {"request_id": f"s-{100 * (i // 100)}", "index": i % 100, "actual": a}
        for i, a in enumerate(actual)
    ]
    post(api, "/feedback", {"data": items}, "f-0")
    page = root / "report.html"
    page.write_text(render_html(monitor(regressor, open_log(uri))), encoding="utf-8")
    return page


def test_report_renders_in_chromium_with_every_plot_and_no_console_messages(
    report_file: Path, regressor: Trained, tmp_path: Path
) -> None:
    rendered = render(report_file, tmp_path / "profile")
    assert rendered.console == []
    # Set by the page's own script: it ran to the end.
    assert re.search(r'<body[^>]*data-plots="5"', rendered.dom)
    plots = re.findall(r"<figure[^>]*>(.*?)</figure>", rendered.dom, flags=re.S)
    captions = [re.sub(r".*<figcaption>(.*?)</figcaption>.*", r"\1", p, flags=re.S) for p in plots]
    # Features most important first (permutation importance from the card): the target
    # depends on a and b, not on c.
    importance = ModelRegistry.open(str(regressor.registry), model_name="reg").load_champion()
    ranked = sorted(
        importance.card.importance["features"].items(), key=lambda item: -item[1]["mean"]
    )
    assert ranked[-1][0] == "c"
    assert [c.split(":")[0] for c in captions] == [
        "live r2 over time",
        "prediction distribution",
        *(name for name, _ in ranked),
    ]
    for name, value in ranked:
        caption = next(c for c in captions if c.startswith(f"{name}:"))
        assert caption.endswith(f"importance {value['mean']:.3g}")
    assert all("<svg" in p and ("<rect" in p or "<polyline" in p) for p in plots)
    # The drifted feature's row: its importance beside its drift, with a bar.
    drifted = re.search(
        r"<tr class=\"drift\"><td[^>]*>[^<]+</td><td[^>]*>b</td>(.*?)</tr>", rendered.dom
    )
    assert drifted is not None
    cells = re.findall(r"<td[^>]*>(.*?)</td>", drifted.group(1))
    assert cells[-1].startswith(f"{dict(ranked)['b']['mean']:.3g} <svg")


def test_report_is_self_contained(report_file: Path) -> None:
    page = report_file.read_text(encoding="utf-8")
    assert not re.search(r"<(script|img|iframe)[^>]*\ssrc=|<link\b|@import|url\(|@font-face", page)
    assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", page)


def test_the_browser_check_catches_a_page_with_a_script_error(tmp_path: Path) -> None:
    page = tmp_path / "broken.html"
    page.write_text("<html><body><script>notDefined();</script></body></html>")
    assert any("notDefined" in m for m in render(page, tmp_path / "profile").console)
