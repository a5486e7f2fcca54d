"""The report stage: every task's section, the paper's numbers beside ours, as Markdown and HTML."""

from __future__ import annotations

import base64
import os
from pathlib import Path

from .common.artifacts import atomic_path
from .common.report import ReportSection
from .registry import TASKS

HTML_TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: sans-serif; max-width: 70em; margin: 2em auto; padding: 0 1em; line-height: 1.4; }}
table {{ border-collapse: collapse; margin: 0.8em 0; font-size: 0.9em; }}
th, td {{ border: 1px solid #bbb; padding: 0.25em 0.6em; text-align: right; }}
th:first-child, td:first-child {{ text-align: left; }}
img {{ max-width: 100%; }}
code {{ background: #f3f3f3; }}
</style></head><body>
{body}
</body></html>
"""


def collect_sections(data_dir: Path) -> tuple[list[tuple[str, ReportSection]], list[str]]:
    """(task name, section) for every task that has results, and the names of those that have none."""
    done, missing = [], []
    for name, task in TASKS.items():
        section = task.report_section(data_dir)
        (done.append((name, section)) if section is not None else missing.append(name))
    return done, missing


def render_markdown(title: str, sections, missing, out_dir: Path) -> str:
    parts = [f"# {title}\n"]
    parts.append("Each table sets the paper's published numbers beside ours; our numbers come from the artifacts "
                 "under `data/` produced by `dvc repro` with the params in `params.yaml`.\n")
    if missing:
        parts.append("**Not run:** " + ", ".join(f"`{m}` ({TASKS[m].title})" for m in missing) + "\n")
    for name, section in sections:
        parts.append(f"## {section.title}\n\n_Task `{name}`, paper: `{TASKS[name].paper}`._\n")
        parts.append(section.markdown.strip() + "\n")
        for fig in section.figures:
            rel = os.path.relpath(Path(fig), out_dir)
            parts.append(f"![{Path(fig).stem}]({rel})\n")
    return "\n".join(parts)


def render_html(title: str, markdown_text: str, out_dir: Path) -> str:
    import markdown

    body = markdown.markdown(markdown_text, extensions=["tables", "fenced_code"])
    # Embed the figures so the HTML file stands alone.
    for src in sorted(set(_img_sources(body))):
        path = (out_dir / src).resolve()
        if path.is_file():
            data = base64.b64encode(path.read_bytes()).decode()
            body = body.replace(f'src="{src}"', f'src="data:image/png;base64,{data}"')
    return HTML_TEMPLATE.format(title=title, body=body)


def _img_sources(html: str) -> list[str]:
    out, start = [], 0
    while (i := html.find('src="', start)) != -1:
        j = html.find('"', i + 5)
        out.append(html[i + 5 : j])
        start = j
    return out


def build_report(data_dir: Path, out_dir: Path, title: str) -> tuple[Path, Path, list[str], list[str]]:
    """Write report.md and report.html under ``out_dir``; returns their paths, the tasks shown and not run."""
    sections, missing = collect_sections(data_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    md = render_markdown(title, sections, missing, out_dir)
    md_path, html_path = out_dir / "report.md", out_dir / "report.html"
    with atomic_path(md_path) as tmp:
        tmp.write_text(md)
    with atomic_path(html_path) as tmp:
        tmp.write_text(render_html(title, md, out_dir))
    return md_path, html_path, [n for n, _ in sections], missing
