"""Write docs/CLI.md from the commands' own --help (run: .venv/bin/python scripts/gen_cli_docs.py)."""

import os
from pathlib import Path

import typer.main
from typer.testing import CliRunner

from embedops.cli import app

os.environ.update(COLUMNS="100", NO_COLOR="1", TERM="dumb")


def walk(cmd, path):
    yield path
    for name, sub in sorted(getattr(cmd, "commands", {}).items()):
        yield from walk(sub, path + [name])


def main() -> None:
    runner = CliRunner()
    parts = ["# CLI reference\n\nGenerated from `--help` by `scripts/gen_cli_docs.py`; do not edit by hand.\n"]
    for path in walk(typer.main.get_command(app), []):
        result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "100", "NO_COLOR": "1", "TERM": "dumb"})
        title = " ".join(["embedops", *path])
        parts.append(f"\n## `{title}`\n\n```\n{result.stdout.rstrip()}\n```\n")
    out = Path(__file__).resolve().parents[1] / "docs" / "CLI.md"
    out.write_text("".join(parts))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
