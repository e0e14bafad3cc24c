"""The README's demo block: replaced by each `make demo` with the run's summary lines."""

from __future__ import annotations

from pathlib import Path

from llink.errors import LlinkError

from .report import models_line, summary_lines

BEGIN, END = "<!-- demo:begin", "<!-- demo:end -->"


def update_readme(m: dict, out: Path, readme: Path) -> None:
    """Replace the README's demo block with this run's summary and its Stage B curve."""
    import shutil

    head, tail = _readme_block(readme)
    plot = readme.parent / "docs" / "demo_stage_b.png"
    plot.parent.mkdir(exist_ok=True)
    if (out / "slots" / "curve.png").exists():
        shutil.copy2(out / "slots" / "curve.png", plot)
    block = [f"{BEGIN} (written by `make demo` from {out / 'metrics.json'}; do not edit by hand) -->",
             f"Size `{m['size']}`, {models_line(m)}, this machine.", ""] + summary_lines(m) + ["", "![Stage B curve from the demo](docs/demo_stage_b.png)", END]
    readme.write_text(head + "\n".join(block) + tail, encoding="utf-8")
    print(f"README summary updated: {readme}")


def _readme_block(readme: Path) -> tuple[str, str]:
    """The README's text before and after its demo block; a clear error if there is none."""
    if not readme.is_file():
        raise LlinkError(f"--readme {readme}: no such file")
    text = readme.read_text(encoding="utf-8")
    if BEGIN not in text or END not in text:
        raise LlinkError(f"--readme {readme}: no '{BEGIN} -->' … '{END}' block to replace")
    head, rest = text.split(BEGIN, 1)
    return head, rest.split(END, 1)[1]
