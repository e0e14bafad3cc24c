"""Plots (matplotlib, headless): training curves, teacher sweep, rank histogram, judge bars, token counts."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def training_curve(log: Path, out: Path, title: str = "") -> Path | None:
    rows = [json.loads(l) for l in Path(log).read_text().splitlines() if l.strip()] if Path(log).exists() else []
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot([r["step"] for r in rows], [r["loss"] for r in rows], color="tab:blue", lw=1, label="train loss")
    ax.set_xlabel("step")
    ax.set_ylabel("loss", color="tab:blue")
    ev = [r for r in rows if "dev_r1" in r]
    if ev:
        ax2 = ax.twinx()
        ax2.plot([r["step"] for r in ev], [r["dev_r1"] for r in ev], "o-", color="tab:red", label="dev R@1")
        ax2.set_ylabel("dev R@1 (src→en)", color="tab:red")
        ax2.set_ylim(0, 1)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def stage_b_curve(log: Path, out: Path, title: str = "") -> Path | None:
    """Train answer loss, and dev answer loss with true / shuffled / zeroed slots."""
    rows = [json.loads(l) for l in Path(log).read_text().splitlines() if l.strip()] if Path(log).exists() else []
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot([r["step"] for r in rows], [r["sft"] for r in rows], color="tab:blue", lw=0.8, alpha=0.6, label="train answer loss")
    ev = [r for r in rows if "dev_loss_true" in r]
    for key, colour, label in (("dev_loss_true", "tab:green", "dev, true slots"), ("dev_loss_shuffled", "tab:orange", "dev, another sentence's slots"),
                               ("dev_loss_zeroed", "tab:red", "dev, zeroed slots")):
        pts = [(r["step"], r[key]) for r in ev if key in r]
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", color=colour, label=label)
    ax.set_xlabel("step")
    ax.set_ylabel("answer loss (nats/token)")
    ax.legend()
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def sweep_plot(rows: list[dict], out: Path) -> Path:
    fig, ax = plt.subplots(figsize=(7, 4))
    for (pooling, norm) in sorted({(r["pooling"], r["norm"]) for r in rows if r["layer"] != "final"}):
        pts = sorted((r["layer"], r["dev_r1"]) for r in rows if r["pooling"] == pooling and r["norm"] == norm and r["layer"] != "final")
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=f"{pooling}, {norm}")
    for r in rows:
        if r.get("name") == "paper":
            ax.axhline(r["dev_r1"], color="grey", ls="--", label=f"paper preset ({r['dev_r1']:.2f})")
    ax.set_xlabel("decoder layer")
    ax.set_ylabel("dev R@1 (src→en)")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    ax.set_title("Teacher sweep: probe projector, dev retrieval")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def rank_histogram(ranks_by_system: dict, out: Path) -> Path:
    import numpy as np

    fig, ax = plt.subplots(figsize=(7, 4))
    bins = np.unique(np.logspace(0, np.log10(max(int(max(r.max() for r in ranks_by_system.values())), 2)), 30).astype(int))
    for name, r in ranks_by_system.items():
        ax.hist(r, bins=bins, histtype="step", lw=1.5, label=name)
    ax.set_xscale("log")
    ax.set_xlabel("rank of the true English sentence (src→en)")
    ax.set_ylabel("test sentences")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def win_tie_loss(results: list[dict], out: Path) -> Path:
    """Stacked win / tie / loss bars, one per pairwise comparison."""
    fig, ax = plt.subplots(figsize=(7, 0.6 + 0.6 * len(results)))
    labels = [f"{r['a']} vs {r['b']}" for r in results]
    left = [0.0] * len(results)
    for key, colour in (("wins", "tab:green"), ("ties", "tab:gray"), ("losses", "tab:red")):
        vals = [r[key] / r["n"] for r in results]
        ax.barh(labels, vals, left=left, color=colour, label=key)
        left = [l + v for l, v in zip(left, vals)]
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of items (both orders agree = win/loss, otherwise tie)")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def token_bars(tok: dict, out: Path, prompt: dict | None = None, source: str = "Khmer") -> Path:
    """Mean decoder tokens for one test sentence: English, the source language, K slots; with
    `prompt` ({'base': n, 'llink': n}) also the whole chat prompt each system prefills."""
    labels, vals = ["English text", f"{source} text", f"LLINK ({tok['slots']} slots)"], [tok["en_mean"], tok["src_mean"], tok["slots"]]
    colours = ["tab:blue", "tab:red", "tab:green"]
    if prompt:
        labels += [f"base prompt (raw {source})", "LLINK prompt"]
        vals += [prompt["base"], prompt["llink"]]
        colours += ["salmon", "lightgreen"]
    fig, ax = plt.subplots(figsize=(7, 0.6 + 0.5 * len(vals)))
    ax.barh(labels[::-1], vals[::-1], color=colours[::-1])
    for y, v in enumerate(vals[::-1]):
        ax.text(v, y, f" {v:.1f}", va="center", fontsize=8)
    ax.set_xlabel("decoder tokens per test sentence (mean)")
    ax.set_xlim(0, max(vals) * 1.15)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
