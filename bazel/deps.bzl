"""syncpool_deps(): every external repository syncpool needs, for WORKSPACE.

A project that uses syncpool puts three lines in its WORKSPACE:

    local_repository(name = "syncpool", path = "...")  # or http_archive
    load("@syncpool//bazel:deps.bzl", "syncpool_deps")
    syncpool_deps()

and builds with C++20 (`build --cxxopt=-std=c++20 --host_cxxopt=-std=c++20`
in its .bazelrc). syncpool's own WORKSPACE calls the same macro.

A repository the WORKSPACE declared before the call is left alone, so a
project pins its own Abseil by declaring com_google_absl first. build_file
labels are made with Label(), so they resolve in the repository of this file
(@syncpool//third_party:...), not in the project that loads it.

Offline, ./bazelw overrides the downloaded repositories with Debian's
packaged libraries (see bazelw and third_party/offline/).
"""

load("@bazel_tools//tools/build_defs/repo:http.bzl", "http_archive")
load("@bazel_tools//tools/build_defs/repo:utils.bzl", "maybe")

def syncpool_deps():
    """Declares syncpool's external repositories that are not declared yet."""

    # Versions match Debian bookworm's packages, which the offline build links.
    maybe(
        http_archive,
        name = "com_google_absl",
        strip_prefix = "abseil-cpp-20220623.1",
        urls = ["https://github.com/abseil/abseil-cpp/archive/refs/tags/20220623.1.tar.gz"],
    )

    maybe(
        http_archive,
        name = "mimalloc",
        build_file = str(Label("//third_party:mimalloc.BUILD")),
        strip_prefix = "mimalloc-2.0.9",
        urls = ["https://github.com/microsoft/mimalloc/archive/refs/tags/v2.0.9.tar.gz"],
    )

    # Only syncpool's tests and benchmarks use the rest; a repository is
    # fetched only when something that is built needs it.
    maybe(
        http_archive,
        name = "com_google_googletest",
        strip_prefix = "googletest-release-1.12.1",
        urls = ["https://github.com/google/googletest/archive/refs/tags/release-1.12.1.tar.gz"],
    )

    maybe(
        http_archive,
        name = "com_github_google_benchmark",
        strip_prefix = "benchmark-1.7.1",
        urls = ["https://github.com/google/benchmark/archive/refs/tags/v1.7.1.tar.gz"],
    )

    # jemalloc and gperftools' tcmalloc build with autotools, not Bazel: they
    # come from the system (Debian: libjemalloc-dev, libgoogle-perftools-dev).
    maybe(
        native.new_local_repository,
        name = "system_jemalloc",
        build_file = str(Label("//third_party:jemalloc.BUILD")),
        path = "/usr",
    )

    maybe(
        native.new_local_repository,
        name = "system_tcmalloc",
        build_file = str(Label("//third_party:tcmalloc.BUILD")),
        path = "/usr",
    )
