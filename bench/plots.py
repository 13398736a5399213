"""docs/bench_scaling.png: (a) apply time vs resource count, (b) crawl time vs object count;
docs/bench_user_mappings.png: one immuta_user_mappings, seconds and peak RSS vs entries."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib

matplotlib.use("Agg")  # headless

import matplotlib.pyplot as plt  # noqa: E402

from bench.common import Run, linear_fit  # noqa: E402

if TYPE_CHECKING:
    from bench.user_mappings import SizeRuns


def scaling(
    path: Path,
    counts: list[int],
    immuta_apply: list[float],
    null_apply: list[float],
    objects: list[int],
    crawl_seconds: list[float],
    baseline_seconds: float,
    per_database: int,
    title: str,
) -> None:
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 5), constrained_layout=True)
    fig.suptitle(title, fontsize=10)

    a.plot(counts, immuta_apply, "o-", color="tab:blue", label="immuta_user_mapping (Python)")
    a.plot(counts, null_apply, "s--", color="tab:gray", label="null_resource (Go null 2.1.2)")
    for x, y in zip(counts, immuta_apply, strict=True):
        a.annotate(
            f"{y:.2f}" if y < 10 else f"{y:.1f}",
            (x, y),
            textcoords="offset points",
            xytext=(0, 7),
            ha="center",
            fontsize=8,
            color="tab:blue",
        )
    for x, y in zip(counts, null_apply, strict=True):
        a.annotate(
            f"{y:.2f}" if y < 10 else f"{y:.1f}",
            (x, y),
            textcoords="offset points",
            xytext=(0, -13),
            ha="center",
            fontsize=8,
            color="tab:gray",
        )
    a.set_title("(a) terraform apply, -parallelism=10")
    a.set_xlabel("resources")
    a.set_ylabel("seconds")
    a.set_xticks(counts)
    a.set_xlim(0, max(counts) * 1.06)
    top_a = max(immuta_apply + null_apply) * 1.15
    a.set_ylim(-0.07 * top_a, top_a)  # room for the labels under the lower curve
    a.grid(alpha=0.3)
    a.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), fontsize=9, ncol=2, frameon=False)

    slope, intercept = linear_fit(objects, crawl_seconds)
    kilo = [n / 1000 for n in objects]
    top = max(objects) * 1.05
    b.plot(kilo, crawl_seconds, "o", color="tab:green", label="create (provider's own time)")
    b.plot(
        [0, top / 1000],
        [intercept, intercept + slope * top],
        "-",
        color="tab:green",
        alpha=0.6,
        label=f"fit: {intercept:.2f} s + {slope * 1e6:.1f} s per million objects",
    )
    b.plot(
        [0],
        [baseline_seconds],
        "D",
        mfc="none",
        color="tab:red",
        label=f"baseline, no database: {baseline_seconds:.2f} s",
    )
    for x, y in zip(kilo, crawl_seconds, strict=True):
        b.annotate(
            f"{y:.2f} s" if y < 10 else f"{y:.1f} s",
            (x, y),
            textcoords="offset points",
            xytext=(-6, 7),
            ha="right",
            fontsize=8,
        )
    b.set_title(f"(b) crawl: one connection, {per_database:,} objects per database")
    b.set_xlabel("objects registered (thousands)")
    b.set_ylabel("seconds")
    b.set_xlim(-top / 1000 * 0.03, top / 1000)
    b.set_ylim(0, max(crawl_seconds + [baseline_seconds]) * 1.2)
    b.grid(alpha=0.3)
    b.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), fontsize=9, ncol=2, frameon=False)

    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def user_mappings(
    path: Path,
    median: dict[int, SizeRuns],
    null: dict[str, Run],
    null_count: int,
    title: str,
) -> None:
    """(a) seconds of each step against entries, beside the null_resource lines it is held
    against; (b) peak provider RSS against entries, beside the 200 MiB target."""
    sizes = sorted(median)
    kilo = [n / 1000 for n in sizes]
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 5), constrained_layout=True)
    fig.suptitle(title, fontsize=10)
    styles = {
        "apply": ("o-", "tab:blue"),
        "one-entry apply": ("^-", "tab:cyan"),
        "refresh-plan": ("s-", "tab:green"),
        "one-entry plan": ("v-", "tab:olive"),
    }
    for step, (marker, color) in styles.items():
        ys = [median[n].runs[step].seconds for n in sizes]
        a.plot(kilo, ys, marker, color=color, label=step)
        _label_points(a, kilo, ys, color, "{:.1f}")
    for step, color in (("apply", "tab:blue"), ("refresh-plan", "tab:green")):
        same = [d[step].seconds for n in sizes if (d := median[n].data)]
        if len(same) == len(sizes):
            a.plot(
                kilo, same, ":", color=color, alpha=0.8, label=f"terraform_data, same value, {step}"
            )
        a.axhline(
            null[step].seconds,
            ls="--",
            color=color,
            alpha=0.6,
            label=f"{null_count} null_resources, {step}: {null[step].seconds:.1f} s",
        )
    a.set_title("(a) one immuta_user_mappings, -parallelism=10")
    a.set_xlabel("entries (thousands)")
    a.set_ylabel("seconds")
    a.set_xticks(kilo)
    a.set_ylim(0, None)
    a.grid(alpha=0.3)
    a.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), fontsize=8, ncol=3, frameon=False)

    peaks = [max(r.peak_mib for r in median[n].runs.values()) for n in sizes]
    b.plot(kilo, peaks, "o-", color="tab:purple", label="peak provider RSS")
    _label_points(b, kilo, peaks, "tab:purple", "{:.0f}")
    b.axhline(200, ls="--", color="tab:red", alpha=0.6, label="target at 10k entries: 200 MiB")
    b.set_title("(b) peak provider RSS (largest VmHWM)")
    b.set_xlabel("entries (thousands)")
    b.set_ylabel("MiB")
    b.set_xticks(kilo)
    b.set_ylim(0, max(peaks + [200]) * 1.15)
    b.grid(alpha=0.3)
    b.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), fontsize=8, ncol=2, frameon=False)

    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _label_points(ax: Any, xs: list[float], ys: list[float], color: str, fmt: str) -> None:
    """Each point's value, just above it."""
    for x, y in zip(xs, ys, strict=True):
        ax.annotate(
            fmt.format(y),
            (x, y),
            textcoords="offset points",
            xytext=(0, 6),
            ha="center",
            fontsize=7,
            color=color,
        )
