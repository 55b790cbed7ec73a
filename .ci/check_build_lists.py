#!/usr/bin/env python3
"""Fails when a .cc file under src/ or tests/ is missing from the Bazel build
or from the CMake build, naming each file and the build that lacks it.

    .ci/check_build_lists.py CMAKE_BUILD_DIR

Each build is asked, not parsed: Bazel with `bazel query` for every source
file that some target under //... uses (manual targets included), CMake with
the compile_commands.json of a configured build directory (configure it with
-DCMAKE_EXPORT_COMPILE_COMMANDS=ON and the tests on). So globs, macros and
helper functions all count, and nothing here needs to change when tests are
added. Run from anywhere; it finds the repository from its own path.
"""

import json
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
CHECKED_DIRS = ("src", "tests")

HOW_TO_ADD = {
    "Bazel": {
        "src": "BUILD's SYNCPOOL_SRCS glob takes src/*.cc; a file elsewhere needs a target",
        "tests": "add a cc_test (or add it to one's srcs) in tests/BUILD",
    },
    "CMake": {
        "src": "CMakeLists.txt globs src/*.cc (re-run cmake); a file elsewhere needs a target",
        "tests": "add a syncpool_test(NAME) line (or SOURCES) in tests/CMakeLists.txt, "
                 "outside any if() that CI's configuration skips",
    },
}


def files_on_disk():
    found = set()
    for top in CHECKED_DIRS:
        for path in (ROOT / top).rglob("*.cc"):
            found.add(path.relative_to(ROOT).as_posix())
    return found


def files_in_bazel():
    query = subprocess.run(
        [str(ROOT / "bazelw"), "query", "--output=label", "--keep_going=false",
         'kind("source file", deps(//...))'],
        cwd=ROOT, capture_output=True, text=True)
    if query.returncode != 0:
        sys.exit("check_build_lists: bazel query failed:\n" + query.stderr[-4000:])
    found = set()
    for label in query.stdout.split():
        if not label.startswith("//"):
            continue  # external repositories
        package, _, name = label[2:].partition(":")
        found.add(f"{package}/{name}" if package else name)
    return found


def files_in_cmake(build_dir):
    database = build_dir / "compile_commands.json"
    if not database.exists():
        sys.exit(f"check_build_lists: {database} not found: configure the CMake build with "
                 "-DCMAKE_EXPORT_COMPILE_COMMANDS=ON (Makefile or Ninja generator)")
    found = set()
    for entry in json.loads(database.read_text()):
        path = pathlib.Path(entry["directory"], entry["file"]).resolve()
        if path.is_relative_to(ROOT):
            found.add(path.relative_to(ROOT).as_posix())
    return found


def main(argv):
    if len(argv) != 2:
        sys.exit(__doc__)
    on_disk = files_on_disk()
    builds = {"Bazel": files_in_bazel(), "CMake": files_in_cmake(pathlib.Path(argv[1]).resolve())}
    missing = 0
    for path in sorted(on_disk):
        top = path.split("/", 1)[0]
        for build, files in builds.items():
            if path not in files:
                missing += 1
                print(f"check_build_lists: {path} is not in the {build} build: "
                      f"{HOW_TO_ADD[build][top]}")
    if missing:
        print(f"check_build_lists: {missing} missing; every .cc under "
              f"{' and '.join(d + '/' for d in CHECKED_DIRS)} must be in both builds")
        return 1
    print(f"check_build_lists: all {len(on_disk)} .cc files under "
          f"{' and '.join(d + '/' for d in CHECKED_DIRS)} are in the Bazel and the CMake build")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
