#!/usr/bin/env python
"""Rename the original AMAGO's package to ``amago_pl`` in your own scripts and gin files.

    python scripts/port_from_amago.py FILE_OR_DIR... [--in-place | -o OUT]

Rewrites, and nothing else:
  * import statements: ``import amago``, ``import amago as A``, ``import x, amago``,
    ``from amago import ...``, ``from amago.nets.cnn import ...``;
  * dotted paths anywhere in the text (code, strings, gin keys, ``@amago.X`` gin references):
    ``amago.nets.tstep_encoders.FFTstepEncoder.d_hidden`` -> ``amago_pl.nets...``.

A word that merely contains "amago" (``amago_pl``, ``my_amago``, ``amago_runs``, ``AMAGO``) is left
alone, and so are file paths and URLs (``github.com/UT-Austin-RPL/amago.git``). Old paths whose
module moved here (``amago.loading``, ``amago.hindsight``, ``amago.agent.exp_filter``) need no
further edit: ``import amago_pl`` installs the alias table of amago_pl/compat.py, which answers
them. Directories are searched for ``*.py`` and ``*.gin`` files. Without ``--in-place`` or ``-o``
the rewritten text goes to stdout; the summary always goes to stderr.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

OLD, NEW = "amago", "amago_pl"

# ``amago`` followed by ``.name``: not after a word character, a dot, a slash or a dash (so
# ``my_amago.x``, ``pkg.amago.x``, ``/amago.git`` and ``ut-amago.io`` stay), and not followed by a word
# character (``amago_pl.x`` and ``amagox.y`` stay).
_DOTTED = re.compile(r"(?<![\w./\-])amago(?=\.[A-Za-z_])")
# ``import a, amago as b`` / ``from amago import x``: the bare module name in an import statement.
_IMPORT_LINE = re.compile(r"^(\s*)(import|from)(\s+)(.*)$")
_BARE = re.compile(r"(?<![\w.])amago(?![\w.])")


def _rewrite_import(line: str) -> tuple[str, int]:
    m = _IMPORT_LINE.match(line)
    if m is None:
        return line, 0
    indent, keyword, space, rest = m.groups()
    if keyword == "from":
        # only the module part, before " import "
        head, sep, tail = rest.partition(" import ")
        new_head, n = _BARE.subn(NEW, head)
        return f"{indent}{keyword}{space}{new_head}{sep}{tail}", n
    # "import a, b as c  # comment": rename bare module names before any comment
    code, hash_, comment = rest.partition("#")
    new_code, n = _BARE.subn(NEW, code)
    return f"{indent}{keyword}{space}{new_code}{hash_}{comment}", n


def port_text(text: str) -> tuple[str, int]:
    """Rewritten text and the number of replacements made."""
    total = 0
    out: list[str] = []
    for line in text.splitlines(keepends=True):
        body = line.rstrip("\r\n")
        ending = line[len(body) :]
        body, n_dotted = _DOTTED.subn(NEW, body)
        body, n_import = _rewrite_import(body)
        total += n_dotted + n_import
        out.append(body + ending)
    return "".join(out), total


def _inputs(paths: list[str]) -> list[Path]:
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(f for f in p.rglob("*") if f.suffix in (".py", ".gin") and f.is_file())
        else:
            files.append(p)
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Rename amago -> amago_pl in scripts and gin files.")
    parser.add_argument("paths", nargs="+", metavar="FILE", help="files or directories (*.py, *.gin)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--in-place", action="store_true", help="overwrite each file")
    where.add_argument("-o", "--output", help="output file (one input) or directory (several inputs)")
    args = parser.parse_args(argv)

    files = _inputs(args.paths)
    if not files:
        parser.error("no *.py or *.gin files found")
    many = len(files) > 1 or Path(args.paths[0]).is_dir()
    if args.output and many:
        Path(args.output).mkdir(parents=True, exist_ok=True)
    total = 0
    for f in files:
        new, n = port_text(f.read_text())
        total += n
        if args.in_place:
            if n:
                f.write_text(new)
        elif args.output:
            dest = Path(args.output) / f.name if many else Path(args.output)
            dest.write_text(new)
        else:
            sys.stdout.write(new)
        print(f"{f}: {n} replacement{'s' * (n != 1)}", file=sys.stderr)
    print(f"{len(files)} file(s), {total} replacement(s) of '{OLD}' by '{NEW}'", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
