"""TorchRL's own ``TestQMixer`` on ``torchrl_vd.MixingQLoss``: the one-line swap, tested by TorchRL's tests.

Takes a pytorch/rl checkout (or clones one), copies its ``test/`` folder (and ``pytest.ini``) into a temporary
directory — the checkout is never modified, and nothing of TorchRL's test text enters this repository — and
runs the ``TestQMixer`` class of ``test/objectives/test_dqn.py`` three times:

    baseline  the copy as it is: torchrl's ``QMixerLoss`` (the comparable pass count)
    default   every constructor call ``QMixerLoss(`` replaced by ``torchrl_vd.MixingQLoss(`` (nothing else
              changes but an ``import torchrl_vd`` line)
    nomask    the same calls, each loss then given ``loss_mask_key = None`` (QMixerLoss's behaviour: torchrl's
              ``("collector", "mask")`` ignored)

and prints each variant's pass count and the tests that do not pass, grouped by cause: failing under
QMixerLoss too (the environment, not the loss), failing only because the default honours
``("collector", "mask")`` (they pass with ``loss_mask_key=None``), or a difference from QMixerLoss.

The installed torchrl is the one tested (the checkout's ``torchrl/`` sources are not copied); use the test files
of the same version (``--clone`` defaults to the tag ``v<installed torchrl version>``). ``torchrl_vd`` is
imported from this repository. One process, one torch thread.

    python benchmarks/torchrl_loss_suite.py /path/to/pytorch/rl
    python benchmarks/torchrl_loss_suite.py --clone [--ref v0.14.1] [--repo-url https://github.com/pytorch/rl]
    python benchmarks/torchrl_loss_suite.py RL --variants default -- -k test_qmixer_state_dict   # pytest args
"""

from __future__ import annotations

import argparse
import collections
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEST_CLASS = "TestQMixer"
CONSTRUCTOR = re.compile(r"\bQMixerLoss\(")
VARIANTS = ("baseline", "default", "nomask")
ADDED = "  # added by torchrl_vd's benchmarks/torchrl_loss_suite.py"
# what each swapped variant puts after the __future__ imports, and what it calls in place of ``QMixerLoss(``
SWAPS = {
    "default": (f"\nimport torchrl_vd{ADDED}\n", "torchrl_vd.MixingQLoss("),
    "nomask": (f"""
import torchrl_vd{ADDED}


def _mixing_q_loss_without_mask(*args, **kwargs):{ADDED}
    loss = torchrl_vd.MixingQLoss(*args, **kwargs)
    loss.loss_mask_key = None  # QMixerLoss's behaviour: ("collector", "mask") ignored
    return loss
""", "_mixing_q_loss_without_mask("),
}
CAUSES = {
    "env": "fails with QMixerLoss too (not about the loss)",
    "mask": "the default honours (\"collector\", \"mask\"), which TestQMixer's mock batch sets all False: the loss "
            "and its gradients are 0 (passes with loss_mask_key=None)",
    "diff": "a difference from QMixerLoss",
}


# ------------------------------------------------------------------------------------------ the swap
def swap(source: str, variant: str) -> tuple[str, int]:
    """``source`` with its ``QMixerLoss(`` constructor calls replaced for ``variant`` (an import line added after
    the ``from __future__`` imports); ``(text, number of calls replaced)``. ``baseline`` returns it unchanged."""
    if variant == "baseline":
        return source, 0
    if variant not in SWAPS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}.")
    header, call = SWAPS[variant]
    body, n = CONSTRUCTOR.subn(call, source)
    futures = list(re.finditer(r"^from __future__ import [^\n]+\n", body, flags=re.M))
    at = futures[-1].end() if futures else 0
    return body[:at] + header + body[at:], n


def find_test_file(test_dir: Path) -> Path:
    """The file defining ``class TestQMixer`` (``objectives/test_dqn.py`` since torchrl 0.9; searched otherwise)."""
    usual = test_dir / "objectives" / "test_dqn.py"
    if usual.is_file() and f"class {TEST_CLASS}(" in usual.read_text():
        return usual
    for path in sorted(test_dir.rglob("test_*.py")):
        if f"class {TEST_CLASS}(" in path.read_text(errors="ignore"):
            return path
    raise FileNotFoundError(f"No 'class {TEST_CLASS}(' under {test_dir}: is this a pytorch/rl checkout with its "
                            "test/ folder?")


def copy_tests(checkout: Path, into: Path) -> Path:
    """Copy the checkout's ``test/`` (and ``pytest.ini``) into ``into``; return the copied test folder."""
    test_dir = checkout / "test"
    if not test_dir.is_dir():
        raise FileNotFoundError(f"{checkout} has no test/ folder: pass the root of a pytorch/rl checkout "
                                "(or use --clone).")
    shutil.copytree(test_dir, into / "test", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    if (checkout / "pytest.ini").is_file():
        shutil.copy2(checkout / "pytest.ini", into / "pytest.ini")  # markers, -ra, xfail_strict
    return into / "test"


def clone(url: str, ref: str, into: Path) -> Path:
    """A shallow clone of ``ref`` holding only ``test/`` and ``pytest.ini`` (sparse; partial where allowed)."""
    dest = into / "rl"
    base = ["git", "clone", "--quiet", "--depth", "1", "--branch", ref, "--no-checkout"]
    for extra in (["--filter=blob:none"], []):  # servers that refuse filters still serve a shallow clone
        shutil.rmtree(dest, ignore_errors=True)
        if subprocess.run([*base, *extra, url, str(dest)], capture_output=True, text=True).returncode == 0:
            break
    else:
        raise RuntimeError(f"git clone --branch {ref} {url} failed: check the network and that the ref exists "
                           "(--ref prepare-0.14 or a tag such as v0.14.1).")
    subprocess.run(["git", "-C", str(dest), "sparse-checkout", "set", "--no-cone", "/test/", "/pytest.ini"],
                   check=True, capture_output=True)
    subprocess.run(["git", "-C", str(dest), "checkout", "--quiet"], check=True, capture_output=True)
    return dest


# ------------------------------------------------------------------------------------------ running
def run_variant(test_file: Path, variant: str, out: Path, pytest_args: list[str]) -> dict[str, tuple[str, str]]:
    """Write the variant's copy beside the original test file, run ``TestQMixer`` there; ``{test id: (outcome,
    first line of the error)}``."""
    text, n = swap(test_file.read_text(), variant)
    if variant != "baseline" and n == 0:
        raise RuntimeError(f"No 'QMixerLoss(' call in {test_file.name}: nothing to swap.")
    target = test_file.with_name(f"{test_file.stem}_{variant}.py")
    target.write_text(text)
    junit = out / f"junit_{variant}.xml"
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]))
    cmd = [sys.executable, "-m", "pytest", target.name, "-k", select(pytest_args), "-p", "no:cacheprovider", "-q",
           f"--junitxml={junit}", "-o", "junit_family=xunit1", *without_k(pytest_args)]
    print(f"[{variant}] {n} constructor calls replaced; running {' '.join(cmd[1:])}", flush=True)
    with open(out / f"pytest_{variant}.log", "w") as log:
        subprocess.run(cmd, cwd=target.parent, env=env, stdout=log, stderr=subprocess.STDOUT)
    if not junit.is_file():
        raise RuntimeError(f"pytest wrote no report for {variant}: see {out / f'pytest_{variant}.log'}.")
    return read_junit(junit)


def select(pytest_args: list[str]) -> str:
    """``-k`` for pytest: ``TestQMixer``, narrowed by the caller's own ``-k EXPR`` (``TestQMixer and (EXPR)``)."""
    exprs = [pytest_args[i + 1] for i, arg in enumerate(pytest_args[:-1]) if arg == "-k"]
    return " and ".join([TEST_CLASS, *(f"({e})" for e in exprs)])


def without_k(pytest_args: list[str]) -> list[str]:
    skip = {i + 1 for i, arg in enumerate(pytest_args) if arg == "-k"}
    return [arg for i, arg in enumerate(pytest_args) if arg != "-k" and i not in skip]


def read_junit(path: Path) -> dict[str, tuple[str, str]]:
    """``{Class::test[params]: (PASSED | FAILED | ERROR | SKIPPED, first line of the message)}``."""
    rows = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        name = f"{case.get('classname', '').split('.')[-1]}::{case.get('name')}"
        outcome, msg = "PASSED", ""
        for tag, label in (("failure", "FAILED"), ("error", "ERROR"), ("skipped", "SKIPPED")):
            el = case.find(tag)
            if el is not None:
                outcome, msg = label, _first_line(el.get("message")) or _first_line(el.text)
                break
        rows[name] = (outcome, msg)
    return rows


def _first_line(msg: str | None) -> str:
    return next((line.strip() for line in (msg or "").splitlines() if line.strip()), "")


# ------------------------------------------------------------------------------------------ report
def classify(results: dict[str, dict[str, tuple[str, str]]]) -> dict[str, dict[str, list[tuple[str, str]]]]:
    """Each swapped variant's tests that do not pass, by cause (``CAUSES``): ``{variant: {cause: [(id, first
    error line)]}}``. A test failing under QMixerLoss too is ``env``; one failing only in ``default`` that passes
    in ``nomask`` is ``mask``; the rest ``diff``."""
    base, nomask = results.get("baseline", {}), results.get("nomask", {})
    out = {}
    for variant, rows in results.items():
        if variant == "baseline":
            continue
        groups = collections.defaultdict(list)
        for name, (outcome, msg) in rows.items():
            if outcome == "PASSED":
                continue
            if name in base and base[name][0] != "PASSED":
                cause = "env"
            elif variant == "default" and nomask.get(name, ("",))[0] == "PASSED":
                cause = "mask"
            else:
                cause = "diff"
            groups[cause].append((name, msg))
        out[variant] = dict(groups)
    return out


def report(results: dict[str, dict[str, tuple[str, str]]]) -> str:
    """Pass counts per variant, then each swapped variant's non-passing tests by cause and first error line."""
    base = {name for name, (outcome, _) in results.get("baseline", {}).items() if outcome == "PASSED"}
    lines = ["", f"{TEST_CLASS} pass counts (passed / collected"
             + (f"; of the {len(base)} that pass with QMixerLoss" if base else "") + "):"]
    for variant, rows in results.items():
        counts = collections.Counter(outcome for outcome, _ in rows.values())
        comparable = f" ({sum(rows.get(n, ('',))[0] == 'PASSED' for n in base)} / {len(base)})" if base else ""
        lines.append(f"  {variant:9s} {counts['PASSED']:3d} / {len(rows)}{comparable}   "
                     + ", ".join(f"{k.lower()} {v}" for k, v in sorted(counts.items()) if k != "PASSED"))
    for variant, groups in classify(results).items():
        for cause in ("diff", "mask", "env"):
            tests = groups.get(cause, [])
            if not tests:
                continue
            lines += ["", f"[{variant}] {len(tests)} not passing: {CAUSES[cause]}"]
            by_msg = collections.defaultdict(list)
            for name, msg in tests:
                by_msg[msg[:160]].append(name)
            for msg, names in sorted(by_msg.items(), key=lambda kv: -len(kv[1])):
                lines.append(f"  ({len(names)}) {msg}")
                lines += [f"      {name}" for name in sorted(names)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    pytest_args = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[:argv.index("--")] if "--" in argv else argv
    try:
        torchrl_version = importlib.metadata.version("torchrl")
    except importlib.metadata.PackageNotFoundError:
        sys.exit(f"torchrl is not installed for {sys.executable}: run with the project's environment "
                 "(PYTHON=/path/to/.venv/bin/python bash benchmarks/torchrl_loss_suite.sh ...).")
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkout", nargs="?", type=Path, help="root of a pytorch/rl checkout (read only)")
    p.add_argument("--clone", action="store_true", help="clone pytorch/rl's --ref instead (needs network)")
    p.add_argument("--ref", default=f"v{torchrl_version.split('+')[0]}", help="tag or branch to clone")
    p.add_argument("--repo-url", default="https://github.com/pytorch/rl")
    p.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, of {', '.join(VARIANTS)}")
    p.add_argument("--out", type=Path, help="where the junit XML, pytest logs and results.json go (default: the "
                                            "temporary directory)")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory")
    a = p.parse_args(argv)
    variants = [v for v in a.variants.split(",") if v]
    if (a.checkout is None) == (not a.clone) or not set(variants) <= set(VARIANTS):
        p.error(f"give a checkout path or --clone (not both); variants among {VARIANTS}")
    work = Path(tempfile.mkdtemp(prefix="torchrl_loss_suite_"))
    try:
        checkout = clone(a.repo_url, a.ref, work) if a.clone else a.checkout.resolve()
        test_file = find_test_file(copy_tests(checkout, work / "copy"))
        out = (a.out or work / "out").resolve()
        out.mkdir(parents=True, exist_ok=True)
        print(f"torchrl {torchrl_version}; tests from {checkout}; copy in {work}", flush=True)
        results = {v: run_variant(test_file, v, out, pytest_args) for v in variants}
        (out / "results.json").write_text(json.dumps({"results": results, "classified": classify(results)}, indent=1))
        print(report(results))
        print(f"\nper-test results: {out / 'results.json'}")
    finally:
        if a.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
