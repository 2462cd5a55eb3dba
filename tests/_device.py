"""The device fixture's parameters and a counter of what crosses between the host and a device (tests/test_gpu.py).

``DEVICES``: ``cpu`` runs in the default suite; ``cuda`` is marked ``gpu`` and skipped without CUDA
(``pytest -m gpu`` on a machine with one; benchmarks/gpu_check.sh runs them).

:class:`HostTraffic` counts, while it is active,

* ``reads``: reads of tensor values by the host, seen at torch's dispatcher: ``aten._local_scalar_dense``
  (``.item()``, ``bool(t)``, ``int(t)``, ``.tolist()``) and ``aten.nonzero`` (its output's size is data). On
  CUDA each is a synchronising device-to-host copy; on CPU it is the same code path, so a CPU run counts what a
  GPU run would wait for (a CPU kernel's own internal checks, e.g. ``F.one_hot`` reading the actions' range,
  count here too, where CUDA skips them);
* ``copies``: ``aten._to_copy`` / ``aten.copy_`` calls whose source and destination devices differ (a tensor
  moved between the host and a device), with the shapes moved;
* on CUDA, also the profiler's ``Memcpy HtoD`` / ``Memcpy DtoH`` events, which see the copies made inside
  kernels as well (e.g. host indices an indexing kernel moves to the device).
"""

from __future__ import annotations

import collections

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

CUDA = torch.cuda.is_available()
ON_CUDA = [pytest.mark.gpu, pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU (pytest -m gpu on a machine with one)")]
DEVICES = [pytest.param("cpu", id="cpu"), pytest.param("cuda", id="cuda", marks=ON_CUDA)]

_READS = ("aten._local_scalar_dense", "aten.nonzero")
_COPIES = ("aten._to_copy", "aten.copy_")


def _devices(args, kwargs) -> set[torch.device]:
    found = {a.device for a in args if isinstance(a, torch.Tensor)}
    device = (kwargs or {}).get("device")
    return found | ({torch.device(device)} if device is not None else set())


class HostTraffic(TorchDispatchMode):
    """Counts host reads and host<->device copies while active (see the module docstring).

    Attributes:
        reads: ``{op name: count}`` of host reads.
        copies: ``[(op name, from device, to device, shape)]`` of cross-device copies.
        memcpy: ``{"HtoD": n, "DtoH": n}`` from the CUDA profiler (empty on CPU).
    """

    def __init__(self, device: str):
        super().__init__()
        self.device = torch.device(device)
        self.reads: collections.Counter = collections.Counter()
        self.copies: list[tuple] = []
        self.memcpy: collections.Counter = collections.Counter()
        self._prof = None

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        name = str(func.overloadpacket) if hasattr(func, "overloadpacket") else str(func)
        name = name if name.startswith("aten.") else f"aten.{name}"
        if name in _READS:
            self.reads[name] += 1
        elif name in _COPIES and isinstance(out, torch.Tensor):
            src = _devices(args[1:2] if name == "aten.copy_" else args[:1], None)
            if any(d != out.device for d in src):
                self.copies.append((name, str(next(iter(src))), str(out.device), tuple(out.shape)))
        return out

    def __enter__(self):
        if self.device.type == "cuda":
            from torch.profiler import ProfilerActivity, profile

            torch.cuda.synchronize(self.device)
            self._prof = profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA])
            self._prof.__enter__()
        return super().__enter__()

    def __exit__(self, *exc):
        out = super().__exit__(*exc)
        if self._prof is not None:
            torch.cuda.synchronize(self.device)
            self._prof.__exit__(*exc)
            for event in self._prof.events():
                for kind in ("HtoD", "DtoH"):
                    if "Memcpy" in event.name and kind in event.name:
                        self.memcpy[kind] += 1
        return out

    @property
    def n_reads(self) -> int:
        return sum(self.reads.values())

    def describe(self) -> str:
        return f"reads {dict(self.reads)}, copies {self.copies[:5]}, CUDA memcpy {dict(self.memcpy)}"
