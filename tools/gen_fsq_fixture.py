"""Generate the FSQ reference fixtures from the real vector-quantize-pytorch.

Run it with torch and the package installed (e.g. ``pip install -e '.[train]'``)::

    /work/venv-torch/bin/python tools/gen_fsq_fixture.py   # -> tests/fixtures/fsq/*.npz

It is deterministic (one fixed seed per level set). Each level set gets one compressed
``levels_<L0>-<L1>-....npz`` holding:

- ``levels`` int64 (d,)
- ``versions`` str (2,): torch and vector-quantize-pytorch versions
- ``platform`` str (3,): machine, torch CPU capability, MKL version. torch's float32 ``tanh`` on
  x86 is MKL's, whose last bit depends on the instruction set MKL picks at run time, so
  ``bounded`` below holds for this platform only.
- ``half_l``, ``shift`` float32 (d,): the constants torch's ``FSQ.bound`` computes
  (``shift`` is captured from the ``atanh`` call inside it)
- ``z`` float32 (n, d), n > 10,000: projection-stage inputs, see ``kind``
- ``kind`` int8 (n,) and ``kind_names`` str: which generator made each row of ``z``:
  normal(0, 1), normal(0, 3), uniform(-10, 10), one dimension at a rounding boundary
  (bounded == k + 0.5 solved in float64) or 1-3 ulp beside it, signed zeros,
  saturation (1e3 .. float32 max), tiny and denormal values
- ``bounded`` float32 (n, d): the tensor torch feeds to Round, captured at ``round_ste``
- ``zhat`` float32 (n, d) and ``indices`` int64 (n,): what ``FSQ.forward`` returns for
  ``z`` shaped (n, 1, d)
- ``b`` float32 (m, d): bounded-stage inputs: every tie k + 0.5 between two levels, the
  floats 1 ulp either side of each tie, every level, -0.5, -0.0, +0.0, the reachable
  extremes, and uniform values over the reachable range
- ``b_round`` float32 (m, d): ``torch.round(b)``
- ``b_zhat`` float32 (m, d): ``round_ste(b) / half_width``, the package's own rounding
- ``b_indices`` int64 (m,): ``codes_to_indices(torch.round(b) / half_width)``

Level sets the package refuses are skipped and reported on stdout.
"""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch
import vector_quantize_pytorch.finite_scalar_quantization as fsq_module
from vector_quantize_pytorch import FSQ

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "fsq"
# One list of level sets for the generator and the tests.
LEVEL_SETS = json.loads((OUT / "level_sets.json").read_text())["level_sets"]
SEED = 20240917
KIND_NAMES = ["normal1", "normal3", "uniform10", "boundary", "zero", "saturation", "tiny"]
F32 = npt.NDArray[np.float32]


def constants(fsq: FSQ) -> tuple[F32, F32, F32]:
    """(half_l, offset, shift) with the exact expressions of ``FSQ.bound``."""
    levels = fsq._levels
    half_l = (levels - 1) * (1 + 1e-3) / 2
    offset = torch.where(levels % 2 == 0, 0.5, 0.0)
    shift = torch.atanh(offset / half_l)
    return half_l.numpy(), offset.numpy(), shift.numpy()


def ulp_steps(x: np.float32, steps: int) -> np.float32:
    toward = np.float32(np.inf if steps > 0 else -np.inf)
    for _ in range(abs(steps)):
        x = np.nextafter(x, toward)
    return x


def boundary_inputs(fsq: FSQ, rng: np.random.Generator) -> F32:
    """Rows with one dimension where torch's bounded should be k + 0.5, or 1-3 ulp of z off.

    z is solved in float64 from torch's float32 constants, so its float32 lands within an
    ulp or so of the boundary; the neighbours make sure some rows straddle it either way.
    """
    half_l, offset, shift = constants(fsq)
    levels = fsq._levels.tolist()
    rows = []
    for i, n_levels in enumerate(levels):
        lo, hi = -(n_levels // 2), (n_levels - 1) - n_levels // 2
        for k in range(lo, hi):
            target = (k + 0.5 + float(offset[i])) / float(half_l[i])
            z0 = np.float32(np.arctanh(target) - float(shift[i]))
            for steps in range(-3, 4):
                row = rng.normal(0, 1, len(levels)).astype(np.float32)
                row[i] = ulp_steps(z0, steps)
                rows.append(row)
    return np.asarray(rows, np.float32)


def special_inputs(d: int, rng: np.random.Generator) -> dict[str, F32]:
    big = [1e3, 1e4, 1e30, 3.4e38, float(np.finfo(np.float32).max)]
    tiny = [1e-45, 1e-42, 1e-40, 1.1754942e-38, 1.1754944e-38, 1e-30, 1e-10]
    out = {}
    for kind, mags in (("zero", [0.0]), ("saturation", big), ("tiny", tiny)):
        mags32 = np.array(mags, np.float32)
        vals = np.concatenate([mags32, -mags32])
        uniform = np.repeat(vals[:, None], d, axis=1)
        # Mixed rows: each element an independent pick of value and sign.
        mixed = rng.choice(vals, (16 * len(vals), d))
        out[kind] = np.concatenate([uniform, mixed]).astype(np.float32)
    return out


def bounded_inputs(fsq: FSQ, rng: np.random.Generator) -> F32:
    half_l, offset, _ = constants(fsq)
    levels = fsq._levels.numpy().astype(np.int64)
    d = len(levels)
    lo, hi = -(levels // 2), (levels - 1) - levels // 2
    # Per dimension: every tie, the float either side of it, and every level.
    per_dim = []
    for i in range(d):
        ties = np.arange(lo[i], hi[i], dtype=np.float32) + np.float32(0.5)
        below = np.nextafter(ties, np.float32(-np.inf))
        above = np.nextafter(ties, np.float32(np.inf))
        exact = np.arange(lo[i], hi[i] + 1, dtype=np.float32)
        per_dim.append(np.concatenate([ties, below, above, exact]))
    n = max(len(v) for v in per_dim)
    cycled = np.stack([np.resize(v, n) for v in per_dim], axis=1)
    # Also every dimension's values against a shuffled partner in the others.
    shuffled = np.stack([rng.permutation(np.resize(v, 4 * n)) for v in per_dim], axis=1)
    top = half_l - offset
    bottom = -half_l - offset
    fixed = np.stack([
        np.full(d, -0.5), np.full(d, -0.0), np.full(d, 0.0), top, bottom,
    ]).astype(np.float32)  # fmt: skip
    rand = rng.uniform(bottom, top, (1000, d)).astype(np.float32)
    return np.concatenate([cycled, shuffled, fixed, rand]).astype(np.float32)


def capture(fsq: FSQ, z: F32) -> dict[str, F32]:
    """Run ``fsq.forward`` and capture the ``atanh``, ``tanh`` and Round inputs inside it."""
    seen: dict[str, list[torch.Tensor]] = {"atanh": [], "tanh": [], "round": []}
    originals = {"atanh": fsq_module.atanh, "tanh": fsq_module.tanh, "round": fsq_module.round_ste}

    def spy(name: str) -> Callable[[torch.Tensor], torch.Tensor]:
        def wrapped(t: torch.Tensor) -> torch.Tensor:
            if name == "round":
                seen[name].append(t.detach().clone())
                return originals[name](t)
            out = originals[name](t)
            seen[name].append(out.detach().clone())
            return out

        return wrapped

    fsq_module.atanh, fsq_module.tanh, fsq_module.round_ste = (
        spy("atanh"),
        spy("tanh"),
        spy("round"),
    )
    try:
        with torch.no_grad():
            zhat, idx = fsq(torch.from_numpy(z).unsqueeze(1))
    finally:
        fsq_module.atanh = originals["atanh"]
        fsq_module.tanh = originals["tanh"]
        fsq_module.round_ste = originals["round"]
    assert all(len(v) == 1 for v in seen.values()), {k: len(v) for k, v in seen.items()}
    n, d = z.shape
    return {
        "shift": seen["atanh"][0].numpy(),
        "tanh": seen["tanh"][0].numpy().reshape(n, d),
        "bounded": seen["round"][0].numpy().reshape(n, d),
        "zhat": zhat.numpy().reshape(n, d),
        "indices": idx.numpy().reshape(n).astype(np.int64),
    }


def platform_info() -> list[str]:
    mkl = [ln.strip(" -") for ln in torch.__config__.show().splitlines() if "Math Kernel" in ln]
    env = [
        f"{k}={os.environ[k]}" for k in ("MKL_ENABLE_INSTRUCTIONS", "MKL_CBWR") if k in os.environ
    ]
    return [
        f"machine {platform.machine()}",
        f"torch cpu capability {torch.backends.cpu.get_cpu_capability()}",
        "; ".join(mkl + env) or "no MKL",
    ]


def generate(fsq: FSQ, seed: int) -> tuple[dict[str, npt.NDArray[np.generic]], str]:
    """The fixture arrays for one level set, and a line of statistics to print."""
    rng = np.random.default_rng([SEED, seed])
    levels = fsq._levels.tolist()
    d = len(levels)
    specials = special_inputs(d, rng)
    groups = {
        "normal1": rng.normal(0, 1, (4000, d)).astype(np.float32),
        "normal3": rng.normal(0, 3, (3000, d)).astype(np.float32),
        "uniform10": rng.uniform(-10, 10, (3000, d)).astype(np.float32),
        "boundary": boundary_inputs(fsq, rng),
        **specials,
    }
    z = np.concatenate([groups[k] for k in KIND_NAMES])
    kind = np.concatenate([np.full(len(groups[k]), i, np.int8) for i, k in enumerate(KIND_NAMES)])

    half_l, offset, shift = constants(fsq)
    got = capture(fsq, z)
    # The captured shift is the one forward used; the recomputed one must agree with it.
    assert np.array_equal(got["shift"].view(np.uint32), shift.view(np.uint32))

    # torch's bound is its tanh times half_l minus offset, two plain float32 ops (no FMA).
    rebuilt = got["tanh"] * half_l - offset
    assert np.array_equal(rebuilt.view(np.uint32), got["bounded"].view(np.uint32))
    exact = np.tanh((z + shift).astype(np.float64)).astype(np.float32)
    ulps = np.abs(got["tanh"].view(np.int32).astype(np.int64) - exact.view(np.int32))
    note = f"torch tanh is 1 ulp off correctly rounded on {np.mean(ulps != 0):.2%} of elements"
    assert ulps.max() <= 1, ulps.max()

    b = bounded_inputs(fsq, rng)
    half_width = fsq._levels // 2
    with torch.no_grad():
        bt = torch.from_numpy(b)
        b_round = torch.round(bt)
        b_zhat = fsq_module.round_ste(bt) / half_width
        b_indices = fsq.codes_to_indices(b_round / half_width)

    data = {
        "levels": np.array(levels, np.int64),
        "versions": np.array(
            [
                f"torch {torch.__version__}",
                f"vector-quantize-pytorch {version('vector-quantize-pytorch')}",
            ]
        ),
        "platform": np.array(platform_info()),
        "half_l": half_l,
        "shift": got["shift"],
        "z": z,
        "kind": kind,
        "kind_names": np.array(KIND_NAMES),
        "bounded": got["bounded"],
        "zhat": got["zhat"],
        "indices": got["indices"],
        "b": b,
        "b_round": b_round.numpy(),
        "b_zhat": b_zhat.numpy(),
        "b_indices": b_indices.numpy().astype(np.int64),
    }
    return data, note


def main() -> None:
    torch.set_num_threads(1)
    OUT.mkdir(parents=True, exist_ok=True)
    total = 0
    for seed, levels in enumerate(LEVEL_SETS):
        name = f"levels_{'-'.join(map(str, levels))}.npz"
        try:
            fsq = FSQ(levels).eval()
        except AssertionError as e:
            # FSQ's constructor asserts on level sets it does not support.
            print(f"{name}: skipped, vector-quantize-pytorch refuses {levels}: {e}")
            continue
        data, note = generate(fsq, seed)
        path = OUT / name
        np.savez_compressed(path, **data)
        size = path.stat().st_size
        total += size
        print(
            f"{name}: {len(data['z'])} z rows, {len(data['b'])} b rows, {size / 1e3:.0f} kB; {note}"
        )
    print(f"total {total / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
