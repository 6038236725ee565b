"""bench/routing's text output and pooled figures (pure: dicts of figures in, text out)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def pooled(held_out: dict[str, Any], keys: Sequence[str]) -> list[dict[str, Any]]:
    """The suite's strategies summed over its held-out datasets (each prompt routed by a
    router that never saw its dataset)."""
    names = [s["name"] for s in held_out[keys[0]]["strategies"]]
    out = []
    for i, name in enumerate(names):
        rows = [held_out[k]["strategies"][i] for k in keys]
        n = [held_out[k]["prompts"] for k in keys]
        cost = sum(r["cost"] for r in rows)
        strong = sum(r["cost"] / r["cost_vs_strong"] for r in rows if r["cost_vs_strong"])
        out.append({
            "name": name if i != 3 else "default_config (shipped recipe)",
            "accuracy": round(sum(r["accuracy"] * k for r, k in zip(rows, n, strict=True))
                              / sum(n), 4),
            "cost": cost,
            "cost_vs_strong": round(cost / strong, 4) if strong else None,
            "strong_share": round(sum(r["strong_share"] * k for r, k in zip(rows, n, strict=True))
                                  / sum(n), 4),
        })  # fmt: skip
    return out


def print_fold(key: str, fig: dict[str, Any]) -> None:
    """One held-out dataset as a few text lines."""
    print(f"\n{key} ({fig['prompts']} prompts, strong accuracy "
          f"{fig['difficulty']['strong_accuracy']:.3f})")  # fmt: skip
    print(f"  {'router':<26} {'APGR':>6} {'95% CI':>15} {'acc@20%':>8} {'cost@95%':>9}")
    for name in ("difficulty", "knn", "shipped recipe (online)", "online + neighbours",
                 "best fixed mix of two"):  # fmt: skip
        r = fig[name]
        ci = r.get("apgr_95ci")
        ci_s = f"[{ci[0]:.2f},{ci[1]:.2f}]" if ci else ""
        a20 = r["accuracy_at_20pct_cost"]
        c95 = r["cost_share_at_95pct_quality"]
        print(f"  {name:<26} {r['apgr']:>6.3f} {ci_s:>15} "
              f"{'-' if a20 is None else f'{a20:.3f}':>8} "
              f"{'-' if c95 is None else f'{c95:.3f}':>9}")  # fmt: skip
    d = fig["default_config"]
    print(f"  default (weight {d['value_weight']:.3f}, prior {d['prior_strength']:g}): "
          f"accuracy {d['accuracy']:.3f} "
          f"({d['quality_vs_strong']:.1%} of strong) at {d['cost_vs_strong']:.1%} of its "
          f"cost, {d['away_from_cheapest']:.1%} away from the cheapest")  # fmt: skip


def print_knn(held_out: dict[str, Any]) -> None:
    """The shipped recipe beside it with nearest outcomes, per held-out dataset."""
    print("\nonline APGR, shipped recipe -> + neighbours (setting chosen on the other datasets);"
          "\ndefault: quality vs strong, cost share, away from cheapest")  # fmt: skip
    before, after = [], []
    for key, fig in held_out.items():
        a, b = fig["shipped recipe (online)"]["apgr"], fig["online_knn"]["apgr"]
        before.append(a)
        after.append(b)
        d, e = fig["default_config"], fig["online_knn"]["default_config"]
        f = fig["online_knn"]["default_config_same_weight"]
        n = fig["online_knn"]["neighbours"]
        print(f"  {key:<26} {a:6.3f} -> {b:6.3f}  (k {n['k']}, c {n['c']:g}, "
              f"power {n['power']:g})  "
              f"{d['quality_vs_strong']:.1%} {d['cost_vs_strong']:.1%} "
              f"{d['away_from_cheapest']:.1%} -> {e['quality_vs_strong']:.1%} "
              f"{e['cost_vs_strong']:.1%} {e['away_from_cheapest']:.1%} (weight "
              f"{e['value_weight']:g}); at {d['value_weight']:g}: "
              f"{f['quality_vs_strong']:.1%} {f['cost_vs_strong']:.1%} "
              f"{f['away_from_cheapest']:.1%}")  # fmt: skip
    print(f"  {'mean':<26} {np.mean(before):6.3f} -> {np.mean(after):6.3f}; median "
          f"{np.median(before):.3f} -> {np.median(after):.3f}")  # fmt: skip
