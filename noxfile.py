"""Sessions that tie the three packages together: tests, compat, lint, typecheck, demo, bench,
build.

Each package is tested in its own virtualenv so that a passing run proves it installs and
works alone; fsbench's virtualenv also holds the two generators it depends on.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import nox

ROOT = Path(__file__).parent
PACKAGES = ["mnist1d", "mdmnist", "fsbench"]
# Distribution names (what pip installs and PyPI lists) of the folders in PACKAGES: PyPI's
# "mnist1d" is the reference package, so ours is "mnist1d-fast" (it still imports as mnist1d).
DISTRIBUTIONS = {"mnist1d": "mnist1d-fast", "mdmnist": "mdmnist", "fsbench": "fsbench"}
# The torch build to install where one is needed; override with FSBENCH_TORCH_SPEC.
TORCH_SPEC = os.environ.get("FSBENCH_TORCH_SPEC", "torch==2.14.1 torchvision==0.29.1").split()
# The type checker that `nox -s tests` runs after fsbench's tests, pinned: a newer mypy may
# find new things to say.
MYPY = "mypy==2.4.1"
# The reference package that mnist1d must reproduce number for number.
MNIST1D_REFERENCE = "mnist1d==0.0.2.post1"
ORACLE = ROOT / "tests" / "mnist1d" / "oracle" / "reference.npz"

nox.needs_version = ">=2024.3.2"
nox.options.sessions = ["tests"]
nox.options.reuse_existing_virtualenvs = False


def _install_package(session: nox.Session, name: str, extras: str = "test") -> None:
    """Install one package of the monorepo (and, for fsbench, torch and the generators)."""
    if name == "fsbench":
        session.install(*TORCH_SPEC)
        session.install("./packages/mnist1d", "./packages/mdmnist")
    session.install(f"./packages/{name}[{extras}]" if extras else f"./packages/{name}")


@nox.session
def compat(session: nox.Session) -> None:
    """Install the reference mnist1d in its own venv and write its outputs as the test oracle."""
    session.install(MNIST1D_REFERENCE)
    session.run("python", "tests/mnist1d/make_oracle.py", str(ORACLE))


@nox.session(requires=["compat"])
@nox.parametrize("package", PACKAGES)
def tests(session: nox.Session, package: str) -> None:
    """Install one package alone in a fresh venv and run its tests (with the optional
    TensorFlow Datasets extra where a package has one, so its tests run too)."""
    _install_package(session, package, extras="test,tfds")
    session.install("pytest-xdist")
    env = {"MNIST1D_ORACLE": str(ORACLE), "MNIST1D_REQUIRE_ORACLE": "1"}
    paths = [f"tests/{package}"]
    if package == "fsbench":
        paths.append("tests/integration")
    session.run("pytest", "-n", "2", "-q", *paths, *session.posargs, env=env)
    if package == "fsbench" and not session.posargs:
        _typecheck_fsbench(session)


def _typecheck_fsbench(session: nox.Session) -> None:
    """mypy over fsbench: its type hints are part of its Python API, so they are tested with it.

    It runs in the test venv because mypy needs torch installed to check calls into it, and a
    second venv with torch (5.5 GB) filled CI's disk (the settings: packages/fsbench/pyproject.toml).
    """
    session.install(MYPY)
    session.run("mypy", "--config-file", "packages/fsbench/pyproject.toml")


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check over the whole tree (light: no torch needed)."""
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy over fsbench on its own (`nox -s tests` runs it too, after fsbench's tests)."""
    _install_package(session, "fsbench", extras="")
    _typecheck_fsbench(session)


@nox.session
def demo(session: nox.Session) -> None:
    """The main job end to end on embedded data: generate both datasets, train, print tables,
    and write them as one page, demo-out/report.html.

    Every step is a CLI call a researcher would type; outputs land in demo-out/.
    """
    _install_package(session, "fsbench", extras="")
    out = ROOT / "demo-out"
    double = out / "double_mnist"
    runs = out / "runs"
    out.mkdir(exist_ok=True)
    # 1. MNIST-1D, number for number the reference dataset, and a picture of it.
    session.run("mnist1d", "make", "--output", f"{out}/mnist1d.npz", "--overwrite")
    session.run(
        "mnist1d", "plot", f"{out}/mnist1d.npz", "--output", f"{out}/mnist1d.png", "--overwrite"
    )
    # 2. A small DoubleMNIST from the embedded MNIST (the published set is 1000 per class).
    session.run(
        "mdmnist",
        "--num-digit",
        "2",
        "--num-image-per-class",
        "100",
        "--format",
        "hdf5",
        "--format",
        "png",
        "--workers",
        "2",
        "--output",
        str(double),
        "--overwrite",
    )
    session.run("mdmnist", "verify", str(double))
    session.run(
        "mdmnist", "preview", str(double), "--output", f"{out}/double_mnist.png", "--overwrite"
    )
    # 3. Short CPU runs on it (5-way 1-shot, 15 queries). Prototypical Networks twice: with Snell
    #    et al.'s squared distance and with the plain Euclidean one, which learns much faster on
    #    64x64 images (README: fsbench, "squared vs plain Euclidean"); then MAML; their table and
    #    curves.
    for distance in ("sqeuclidean", "euclidean"):
        session.run(
            "fsbench",
            "run",
            "protonet",
            "doubled",
            "--dataset-dir",
            str(double),
            "--train-way",
            "5",
            "--distance",
            distance,
            "--iterations",
            "300",
            "--episodes",
            "200",
            "--out",
            f"{runs}/protonet-{distance}",
            "--overwrite",
        )
    session.run(
        "fsbench",
        "plot",
        f"{runs}/protonet-sqeuclidean",
        f"{runs}/protonet-euclidean",
        "--out",
        f"{runs}/protonet-distance.png",
        "--overwrite",
    )
    session.run(
        "fsbench",
        "run",
        "maml",
        "doubled",
        "--dataset-dir",
        str(double),
        "--meta-batch",
        "4",
        "--hidden",
        "16",
        "--iterations",
        "300",
        "--episodes",
        "100",
        "--out",
        f"{runs}/maml",
        "--overwrite",
    )
    session.run("fsbench", "table", str(runs), "--out", str(runs))
    # 4. The MNIST-1D table of Greydanus 2020 beside the published numbers.
    session.run(
        "fsbench",
        "reproduce",
        "mnist1d",
        "--quick",
        "--jobs",
        "2",
        "--out",
        f"{out}/mnist1d-table",
        "--overwrite",
        "--quiet",
    )
    # 5. All of it as one page to share: tables beside the published numbers, every run's curves,
    #    deviations, versions; self-contained (open it offline, mail it, read it on a phone).
    report = out / "report.html"
    session.run(
        "fsbench", "report", str(runs), f"{out}/mnist1d-table", "--out", str(report), "--overwrite"
    )
    session.log(f"The report of this demo: {report} (open it in a browser)")


@nox.session
def bench(session: nox.Session) -> None:
    """Speed benchmarks: each prints a ratio against a baseline measured in the same run."""
    _install_package(session, "fsbench", extras="test")
    session.install("imageio")
    ref_venv = Path(session.create_tmp()).resolve() / "reference-venv"
    session.run("python", "-m", "venv", str(ref_venv))
    ref_python = ref_venv / "bin" / "python"
    session.run(str(ref_python), "-m", "pip", "install", "-q", MNIST1D_REFERENCE, external=True)
    session.run(
        "python", "benchmarks/run_all.py", "--reference-python", str(ref_python), *session.posargs
    )


def _cli_checks(session: nox.Session, bin_dir: Path, package: str, work: Path) -> None:
    """Run one installed package's CLI in an empty folder outside the checkout: --help and a
    tiny real job."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)

    def run(command: str) -> None:
        tool, *args = command.split()
        with session.chdir(work):
            session.run(str(bin_dir / tool), *args, external=True)

    run(f"{package} --help")
    double = "mdmnist --num-digit 2 --num-image-per-class 20 --format hdf5 --output double"
    if package == "mnist1d":
        run("mnist1d make --num-samples 200 --output m.npz")
        run("mnist1d info m.npz")
    elif package == "mdmnist":
        run(double)  # from the MNIST embedded in the package (checked against its digests)
        run("mdmnist verify double")
    else:
        run(double)
        run(
            "fsbench run protonet doubled --dataset-dir double --iterations 2 --episodes 4"
            " --train-way 5 --hidden 8 --quiet --out run"
        )
        # the Omniglot split lists are package data; the run records the dependency versions
        check = (
            "import json; from fsbench.data.omniglot import vinyals_classes; "
            "n = {s: len(vinyals_classes(s)) for s in ('train', 'val', 'trainval', 'test')}; "
            "print('split lists', n); assert min(n.values()) > 0; "
            "v = json.load(open('run/result.json'))['versions']; print(v); "
            "assert v['mnist1d-fast'] and v['mdmnist'] and v['fsbench']"
        )
        with session.chdir(work):
            session.run(str(bin_dir / "python"), "-c", check, external=True)


@nox.session
def build(session: nox.Session) -> None:
    """Wheels and sdists of the three packages: build, twine check, and install each in a fresh
    venv from its wheel alone (no checkout on the path) and run its CLI; then the same from the
    sdists, which must carry everything the wheels do (embedded MNIST, Omniglot split lists).

    Distributions land in dist/. fsbench's venv gets torch from TORCH_SPEC first; its siblings
    come from dist/ (--find-links), everything else from the package index.
    """
    session.install("build", "twine")
    dist = ROOT / "dist"
    if dist.exists():
        for old in dist.iterdir():
            old.unlink()
    for package in PACKAGES:
        # python -m build makes the sdist, then the wheel from that sdist
        session.run("python", "-m", "build", "--outdir", str(dist), f"packages/{package}")
    session.run("twine", "check", "--strict", *sorted(str(f) for f in dist.iterdir()))
    tmp = Path(session.create_tmp()).resolve()
    for package in PACKAGES:
        stem = DISTRIBUTIONS[package].replace("-", "_")
        wheel = next(dist.glob(f"{stem}-*.whl"))
        venv = tmp / f"venv-{package}"
        session.run("python", "-m", "venv", "--clear", str(venv))
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
        if package == "fsbench":
            session.run(*pip, *TORCH_SPEC, external=True)
        session.run(*pip, "--find-links", str(dist), str(wheel), external=True)
        _cli_checks(session, venv / "bin", package, tmp / f"work-{package}-wheel")
        # the same venv with the package (and its siblings) reinstalled from the sdists
        needs = PACKAGES if package == "fsbench" else [package]
        sdists = [
            str(next(dist.glob(f"{DISTRIBUTIONS[p].replace('-', '_')}-*.tar.gz"))) for p in needs
        ]
        session.run(*pip, "--no-deps", "--force-reinstall", *sdists, external=True)
        _cli_checks(session, venv / "bin", package, tmp / f"work-{package}-sdist")
