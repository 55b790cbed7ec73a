#!/usr/bin/env python3
"""Writes every ```cpp block of a Markdown file as a C++ program, so that the
build compiles (and ctest runs) exactly what the README shows.

    readme_snippets.py README.md OUT_DIR

A block that defines `int main` is written as it is. Any other block is a
list of statements: its #include lines go first and the rest becomes the
body of `int main()`. Every program starts with #line directives pointing
back at the README, so a compile error names README.md and its line.

Prints the files written, one per line (OUT_DIR is emptied first).
"""

import pathlib
import re
import sys

FENCE = re.compile(r"^(\s*)```(\S*)\s*$")
MAIN = re.compile(r"\bint\s+main\s*\(")


def cpp_blocks(lines):
    """Yields (first_line_number, [lines]) for each ```cpp block."""
    block = None
    start = 0
    for number, line in enumerate(lines, 1):
        fence = FENCE.match(line)
        if block is None:
            if fence and fence.group(2) in ("cpp", "c++", "cc", "cxx"):
                block, start = [], number + 1
        elif fence and fence.group(2) == "":
            yield start, block
            block = None
        else:
            block.append(line)
    if block is not None:
        sys.exit(f"readme_snippets: the ```cpp block at line {start - 1} is never closed")


def program(readme, start, block):
    quoted = readme.replace("\\", "\\\\").replace('"', '\\"')
    if any(MAIN.search(line) for line in block):
        return f'#line {start} "{quoted}"\n' + "".join(line + "\n" for line in block)
    out = []
    body = []
    for number, line in enumerate(block, start):
        if line.lstrip().startswith("#include"):
            out.append(f'#line {number} "{quoted}"\n{line}\n')
        else:
            body.append(f'#line {number} "{quoted}"\n{line}\n')
    return "".join(out) + "int main() {\n" + "".join(body) + "}\n"


def main(argv):
    if len(argv) != 3:
        sys.exit(__doc__)
    readme = pathlib.Path(argv[1])
    out_dir = pathlib.Path(argv[2])
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob("readme_line_*.cc"):
        old.unlink()
    lines = readme.read_text(encoding="utf-8").splitlines()
    for start, block in cpp_blocks(lines):
        path = out_dir / f"readme_line_{start}.cc"
        path.write_text(program(str(readme.resolve()), start, block), encoding="utf-8")
        print(path)


if __name__ == "__main__":
    main(sys.argv)
