"""BenchMARL's own yaml files for the import tests. They are read from BenchMARL's release and never copied into
this repository.

``conf_dir()``, BenchMARL 1.5.2's ``benchmarl/conf`` (experiment/, algorithm/, task/, model/), comes from the
first of these that has it:

1. ``$TORCHRL_VD_BENCHMARL_CONF``: a BenchMARL conf directory (e.g. an unpacked sdist's ``benchmarl/conf``);
2. the cache ``<repository>/.cache/benchmarl-1.5.2/conf`` (or ``$TORCHRL_VD_CACHE/benchmarl-1.5.2/conf``). When it
   is missing, it is filled with ``pip download benchmarl==1.5.2 --no-deps --no-binary :all:`` (the sdist, whose
   sha256 is checked) and the ``benchmarl/conf/**.yaml`` files unpacked from it.

``fine_tuned_config()``, BenchMARL's ``fine_tuned/vmas/conf/config.yaml``, is not in the package. It comes from
``$TORCHRL_VD_BENCHMARL_REPO`` (a BenchMARL checkout), or from the cache's ``fine_tuned/vmas/conf/config.yaml``,
which is downloaded from GitHub at a pinned commit (sha256 checked) when it is missing. Whatever cannot be found
makes the tests that need it skip, with the reason. ``.ci/setup`` runs ``python tests/_benchmarl.py`` to fill the
cache, so that CI runs these tests instead of skipping them.
"""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
from pathlib import Path

VERSION = "1.5.2"
SDIST_SHA256 = "c6131f3cdff70c4d9e966731a265d2047fadc7316fcdc1d7d67f9bb7ba5a9002"  # benchmarl-1.5.2.tar.gz on PyPI
FINE_TUNED = "fine_tuned/vmas/conf/config.yaml"
FINE_TUNED_COMMIT = "f1688561a0063fdab3440f544351aa64fb1194fc"  # "[Fine-tune] Restore VMAS gamma (#198)"
FINE_TUNED_SHA256 = "7b0413af693978b38a361bb4a59af2487155f60b207db419eb22d7d943f2c6c7"
FINE_TUNED_URL = f"https://raw.githubusercontent.com/facebookresearch/BenchMARL/{FINE_TUNED_COMMIT}/{FINE_TUNED}"
ROOT = Path(__file__).resolve().parents[1]


def cache_dir() -> Path:
    return Path(os.environ.get("TORCHRL_VD_CACHE") or ROOT / ".cache") / f"benchmarl-{VERSION}"


def conf_dir() -> tuple[Path | None, str]:
    """``(BenchMARL's conf directory, "")``, or ``(None, why not)``."""
    given = os.environ.get("TORCHRL_VD_BENCHMARL_CONF")
    if given:
        path = Path(given)
        ok = (path / "experiment" / "base_experiment.yaml").is_file()
        why = f"TORCHRL_VD_BENCHMARL_CONF={given} holds no experiment/base_experiment.yaml"
        return (path, "") if ok else (None, why)
    conf = cache_dir() / "conf"
    if (conf / "experiment" / "base_experiment.yaml").is_file():
        return conf, ""
    try:
        _fetch_conf(conf)
    except (OSError, subprocess.SubprocessError, ValueError, tarfile.TarError) as err:
        return None, f"BenchMARL {VERSION}'s yaml not found: set TORCHRL_VD_BENCHMARL_CONF or let pip download it ({err})"
    return conf, ""


def _fetch_conf(conf: Path) -> None:
    """Download the pinned sdist with pip, check its hash, unpack ``benchmarl/conf/**.yaml`` into ``conf``."""
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run([sys.executable, "-m", "pip", "download", f"benchmarl=={VERSION}", "--no-deps",
                              "--no-binary", ":all:", "-d", tmp, "-q"], capture_output=True, text=True, timeout=300)
        sdists = list(Path(tmp).glob("benchmarl-*.tar.gz"))
        if out.returncode or not sdists:
            raise OSError(f"pip download failed: {(out.stderr or out.stdout).strip().splitlines()[-1:]}")
        data = sdists[0].read_bytes()
    if hashlib.sha256(data).hexdigest() != SDIST_SHA256:
        raise ValueError(f"benchmarl-{VERSION}.tar.gz has an unexpected sha256")
    prefix = f"benchmarl-{VERSION}/benchmarl/conf/"
    staging = conf.with_name("conf.partial")
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for member in tar.getmembers():
            rel = member.name[len(prefix):] if member.name.startswith(prefix) else None
            if rel and member.isfile() and rel.endswith(".yaml") and ".." not in Path(rel).parts:
                target = staging / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(tar.extractfile(member).read())
    staging.replace(conf)  # whole or not at all: a later run never sees half a conf directory


def fine_tuned_config() -> tuple[Path | None, str]:
    """``(BenchMARL's fine_tuned/vmas/conf/config.yaml, "")``, or ``(None, why not)``."""
    repo = os.environ.get("TORCHRL_VD_BENCHMARL_REPO")
    if repo:
        path = Path(repo) / FINE_TUNED
        return (path, "") if path.is_file() else (None, f"TORCHRL_VD_BENCHMARL_REPO={repo} has no {FINE_TUNED}")
    path = cache_dir() / FINE_TUNED
    if path.is_file():
        return path, ""
    try:
        with urllib.request.urlopen(FINE_TUNED_URL, timeout=20) as response:
            data = response.read()
    except OSError as err:
        return None, (f"BenchMARL's {FINE_TUNED} is not in its package and GitHub is not reachable ({err}): set "
                      "TORCHRL_VD_BENCHMARL_REPO to a BenchMARL checkout")
    if hashlib.sha256(data).hexdigest() != FINE_TUNED_SHA256:
        return None, f"{FINE_TUNED_URL} has an unexpected sha256"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path, ""


if __name__ == "__main__":  # .ci/setup: fill the cache (the fine-tuned file only where GitHub is reachable)
    conf, why = conf_dir()
    print(f"BenchMARL {VERSION} conf: {conf or why}")
    tuned, why = fine_tuned_config()
    print(f"BenchMARL {FINE_TUNED}: {tuned or why}")
    sys.exit(0 if conf else 1)
