"""Server-rendered pages: the dataset list and a dataset with its versions, a page of
records and the statistics of a version. Thin views over `datasets.services`."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.db.models import Count, Max
from django.http import Http404
from django.shortcuts import get_object_or_404, render
import orjson

from datasets import services
from datasets.errors import DatasetError
from datasets.exporters import EXPORT_FORMATS, FORMAT_LABELS

PREVIEW_PAGE_SIZE = 20
PREVIEW_COLUMNS = 8
CELL_CHARS = 300
#: Size of the histogram drawing, in SVG user units.
CHART_WIDTH = 640
CHART_HEIGHT = 160
CHART_LABEL_HEIGHT = 28


def _page_number(raw: str | None) -> int:
    try:
        return max(1, int(raw or 1))
    except ValueError:
        return 1


def _cell(value: Any) -> str:
    text = value if isinstance(value, str) else orjson.dumps(value).decode()
    return text if len(text) <= CELL_CHARS else text[:CELL_CHARS] + "…"


def _length_label(edge: int) -> str:
    return f"{edge // 1024}k" if edge >= 1024 else str(edge)


def histogram_chart(histogram: list[dict[str, Any]]) -> dict[str, Any]:
    """Bars of an SVG chart (server-rendered, no script) for a text-length histogram."""
    # Trim empty bins at the ends, so the bars that matter get the width.
    counts = [bin_["count"] for bin_ in histogram]
    used = [i for i, count in enumerate(counts) if count]
    if not used:
        return {"bars": [], "width": CHART_WIDTH, "height": CHART_HEIGHT + CHART_LABEL_HEIGHT}
    bins = histogram[used[0] : used[-1] + 1]
    peak = max(bin_["count"] for bin_ in bins)
    slot = CHART_WIDTH / len(bins)
    bars = []
    for i, bin_ in enumerate(bins):
        height = round(CHART_HEIGHT * bin_["count"] / peak, 1)
        to = bin_["to"]
        label = (
            f"{_length_label(bin_['from'])}-{_length_label(to)}"
            if to is not None
            else f"≥{_length_label(bin_['from'])}"
        )
        bars.append(
            {
                "x": round(i * slot + 2, 1),
                "width": round(max(slot - 4, 1), 1),
                "y": round(CHART_HEIGHT - height, 1),
                "height": height,
                "label_x": round(i * slot + slot / 2, 1),
                "label": label,
                "count": bin_["count"],
            }
        )
    return {"bars": bars, "width": CHART_WIDTH, "height": CHART_HEIGHT + CHART_LABEL_HEIGHT, "base": CHART_HEIGHT}


@login_required
def dataset_list(request):
    datasets = (
        services.visible_datasets(request.user)
        .annotate(version_count=Count("versions"), latest_version=Max("versions__number"))
        .order_by("name", "pk")
    )
    return render(request, "datasets/dataset_list.html", {"datasets": datasets})


@login_required
def dataset_detail(request, dataset_id: int):
    dataset = get_object_or_404(services.visible_datasets(request.user), pk=dataset_id)
    versions = list(dataset.versions.select_related("created_by", "produced_by_run"))
    export_formats = [(fmt, FORMAT_LABELS[fmt]) for fmt in EXPORT_FORMATS]
    context: dict[str, Any] = {"dataset": dataset, "versions": versions, "export_formats": export_formats}
    if versions:
        number = request.GET.get("version")
        try:
            version = services.get_version(dataset, int(number)) if number else versions[0]
        except (ValueError, DatasetError):
            raise Http404("no such version") from None
        preview = services.preview(version, page=1, page_size=PREVIEW_PAGE_SIZE)
        page = min(_page_number(request.GET.get("page")), preview["pages"])
        if page != 1:
            preview = services.preview(version, page=page, page_size=PREVIEW_PAGE_SIZE)
        columns = [field["name"] for field in version.manifest.get("fields", [])][:PREVIEW_COLUMNS]
        stats = services.stats(version)
        text_field = next((f for f in stats["fields"] if f["name"] == stats["text_field"]), None)
        context.update(
            version=version,
            preview=preview,
            columns=columns,
            hidden_columns=max(0, len(version.manifest.get("fields", [])) - len(columns)),
            rows=[[_cell(record.get(column)) for column in columns] for record in preview["records"]],
            first_row=(preview["page"] - 1) * PREVIEW_PAGE_SIZE + 1,
            stats=stats,
            text_field=text_field,
            chart=histogram_chart(text_field["length"]["histogram"]) if text_field else None,
            top_fields=[field for field in stats["fields"] if field.get("top_values")][:6],
        )
    return render(request, "datasets/dataset_detail.html", context)
