"""docs/bench_scaling.png: (a) apply time vs resource count, (b) crawl time vs object count."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless

import matplotlib.pyplot as plt  # noqa: E402

from bench.common import linear_fit  # noqa: E402


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
