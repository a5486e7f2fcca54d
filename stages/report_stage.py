"""The report stage: every task's section, the paper's numbers beside ours, as Markdown and HTML."""

from __future__ import annotations

import base64
import html
import json
import os
import re
from pathlib import Path

from phys_ml.environment import MACHINE_FILE, cpu_kind, describe_cpu_kind

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


_MD_SPECIAL = re.compile(r"([\\`*_\[\]!])")  # what starts emphasis, code, links and images


def md_text(text: str) -> str:
    """``text`` (from params or data) as literal Markdown: its Markdown characters backslash-escaped."""
    return _MD_SPECIAL.sub(r"\\\1", " ".join(str(text).split()))


def render_markdown(title: str, sections, missing, out_dir: Path, cpu: dict | None = None) -> str:
    parts = [f"# {md_text(title)}\n"]
    parts.append("Each table sets the paper's published numbers beside ours; our numbers come from the artifacts "
                 "under `data/` produced by `dvc repro` with the params in `params.yaml`.\n")
    if cpu is not None:
        parts.append(f"Written on {md_text(describe_cpu_kind(cpu))} (`{MACHINE_FILE}`): MKL and OpenBLAS pick "
                     "their kernels by CPU, so another kind of CPU gives other last bits with the same versions, "
                     "and the chaotic or long computations carry them further.\n")
    if missing:
        parts.append("**Not run:** " + ", ".join(f"`{m}` ({TASKS[m].title})" for m in missing) + "\n")
    for name, section in sections:
        parts.append(f"## {section.title}\n\n_Task `{name}`, paper: `{TASKS[name].paper}`._\n")
        parts.append(section.markdown.strip() + "\n")
        for fig in section.figures:
            rel = os.path.relpath(Path(fig), out_dir)
            parts.append(f"![{Path(fig).stem}]({rel})\n")
    return "\n".join(parts)


def _markdown_without_html():
    """A Markdown converter that treats raw HTML as text (escaped), so nothing in a report's text (params,
    data) can become a tag of report.html."""
    import markdown
    from markdown.extensions import Extension

    class NoRawHTML(Extension):
        def extendMarkdown(self, md) -> None:  # noqa: N802 - the Markdown API's name
            md.preprocessors.deregister("html_block")
            md.inlinePatterns.deregister("html")

    return markdown.Markdown(extensions=["tables", "fenced_code", NoRawHTML()])


_IMG = re.compile(r'<img alt="([^"]*)" src="([^"]*)"\s*/?>')
_HREF = re.compile(r'href="([^"]*)"')


def render_html(title: str, markdown_text: str, out_dir: Path, figures: set[Path] | frozenset = frozenset()) -> str:
    """The report as one HTML file. Raw HTML in the text is escaped; an image is inlined (base64) only when
    it is one of ``figures`` (the PNGs the tasks' report sections list under the data folder); any other image
    is shown as its alt text, and links keep only web or relative addresses."""
    body = _markdown_without_html().convert(markdown_text)
    allowed = {Path(f).resolve() for f in figures}

    def image(match: re.Match) -> str:
        alt, src = match.group(1), html.unescape(match.group(2))
        path = (out_dir / src).resolve()
        if path in allowed and path.suffix.lower() == ".png" and path.is_file():
            data = base64.b64encode(path.read_bytes()).decode()
            return f'<img alt="{alt}" src="data:image/png;base64,{data}" />'
        return f"[{alt}]"

    def link(match: re.Match) -> str:
        target = html.unescape(match.group(1)).strip()
        scheme = target.split(":", 1)[0].lower() if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target) else ""
        return match.group(0) if scheme in ("", "http", "https", "mailto") else 'href="#"'

    body = _HREF.sub(link, _IMG.sub(image, body))
    return HTML_TEMPLATE.format(title=html.escape(title), body=body)


def report_figures(sections, data_dir: Path) -> set[Path]:
    """The figures the sections list that lie under ``data_dir`` (the only files report.html inlines)."""
    root = Path(data_dir).resolve()
    return {Path(f).resolve() for _, section in sections for f in section.figures
            if Path(f).resolve().is_relative_to(root)}


def build_report(data_dir: Path, out_dir: Path, title: str) -> tuple[Path, Path, list[str], list[str]]:
    """Write report.md, report.html and machine.json (the CPU kind, see phys_ml.environment.cpu_kind) under
    ``out_dir``; returns the paths of the first two, the tasks shown and not run."""
    sections, missing = collect_sections(data_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cpu = cpu_kind()
    md = render_markdown(title, sections, missing, out_dir, cpu)
    md_path, html_path = out_dir / "report.md", out_dir / "report.html"
    with atomic_path(out_dir / MACHINE_FILE) as tmp:  # the CPU kind the results were written on
        tmp.write_text(json.dumps({"cpu": cpu}, indent=1) + "\n")
    with atomic_path(md_path) as tmp:
        tmp.write_text(md)
    with atomic_path(html_path) as tmp:
        tmp.write_text(render_html(title, md, out_dir, report_figures(sections, data_dir)))
    return md_path, html_path, [n for n, _ in sections], missing
