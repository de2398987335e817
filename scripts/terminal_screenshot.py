"""Run a command in a fresh directory and render what it printed as a terminal screenshot (SVG).

Used for the README's picture of training progress, so the picture is real output of the code
at the commit that made it:

    .venv/bin/python scripts/terminal_screenshot.py --out docs/images/training-progress.svg \\
        --title "mlsys train" -- .venv/bin/mlsys train

stdout and stderr go to one pipe, so the lines appear in the order a terminal shows them
(progress on stderr, the summary on stdout). The command runs in an empty temporary directory,
so a local registry starts empty; its exit status is the script's.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from xml.sax.saxutils import escape

CHAR_WIDTH = 7.8  # px per character at FONT_SIZE in a typical monospace font
LINE_HEIGHT = 17
FONT_SIZE = 13
PADDING = 14
TITLE_BAR = 30
BACKGROUND = "#1e1e2e"
FOREGROUND = "#cdd6f4"
DIM = "#7f849c"
PROMPT = "#89b4fa"
GOOD = "#a6e3a1"
WARN = "#f9e2af"
NBSP = "\u00a0"


def colour(line: str) -> str:
    if line.startswith("$ "):
        return PROMPT
    if line.startswith(("PROMOTED", "guardrails:")) or line.endswith("winner"):
        return GOOD
    if "warning" in line or line.startswith("NOT PROMOTED"):
        return WARN
    if line.startswith(("candidates:", "phases:")):
        return DIM
    return FOREGROUND


def render(lines: list[str], title: str) -> str:
    columns = max(80, *(len(line) for line in lines))
    width = int(columns * CHAR_WIDTH + 2 * PADDING)
    height = TITLE_BAR + PADDING * 2 + LINE_HEIGHT * len(lines)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">',
        f'<rect width="{width}" height="{height}" rx="8" fill="{BACKGROUND}"/>',
        f'<rect width="{width}" height="{TITLE_BAR}" rx="8" fill="#313244"/>',
        f'<rect y="{TITLE_BAR - 8}" width="{width}" height="8" fill="#313244"/>',
        *(
            f'<circle cx="{18 + 20 * i}" cy="{TITLE_BAR // 2}" r="6" fill="{fill}"/>'
            for i, fill in enumerate(("#f38ba8", "#f9e2af", "#a6e3a1"))
        ),
        f'<text x="{width // 2}" y="{TITLE_BAR // 2 + 4}" fill="{DIM}" font-size="12" '
        f'font-family="sans-serif" text-anchor="middle">{escape(title)}</text>',
        f"<g font-family=\"ui-monospace, SFMono-Regular, Menlo, Consolas, 'DejaVu Sans Mono', "
        f'monospace" font-size="{FONT_SIZE}">',
    ]
    for index, line in enumerate(lines):
        y = TITLE_BAR + PADDING + LINE_HEIGHT * (index + 1) - 4
        text = escape(line).replace(" ", NBSP)
        parts.append(
            # No-break spaces: SVG renderers collapse runs of ordinary spaces, and the
            # leaderboard's columns are aligned with them.
            f'<text x="{PADDING}" y="{y}" fill="{colour(line)}">{text}</text>'
        )
    parts += ["</g>", "</svg>", ""]
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="SVG file to write")
    parser.add_argument("--title", default="terminal", help="window title; also the prompt line")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND [ARGS...]")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given (after --)")
    executable = [str(Path(command[0]).resolve()) if os.sep in command[0] else command[0]]
    with tempfile.TemporaryDirectory() as workdir:
        result = subprocess.run(  # noqa: S603 - the command is the operator's own argument
            [*executable, *command[1:]],
            cwd=workdir,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            check=False,
        )
    lines = [f"$ {args.title}", *result.stdout.rstrip("\n").splitlines()]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render(lines, args.title))
    print(f"wrote {args.out} ({len(lines)} lines)", file=sys.stderr)
    return result.returncode


if __name__ == "__main__":
    raise SystemExit(main())
