"""Generate the FSQ reference fixtures from the real vector-quantize-pytorch.

    pip install torch==2.13.0 vector-quantize-pytorch==1.32.0   # or: pip install -e '.[train]'
    python tools/gen_fsq_fixture.py                             # -> tests/fixtures/fsq/*.npz

One compressed .npz per level set, deterministic (seed 0), with keys:

- ``levels`` int64 (d,); ``versions`` str: torch and vector-quantize-pytorch versions
- ``z`` float32 (n, d): projection-stage inputs (n >= 10,000): normal(0,1), normal(0,3),
  uniform(-10,10), values at and 1-3 ulp around every rounding boundary, -0.0/+0.0,
  saturation up to float32 max, denormals
- ``bounded`` float32 (n, d): the tensor torch feeds to Round (captured, not recomputed)
- ``zhat`` float32 (n, d) and ``indices`` int64 (n,): what ``FSQ.forward`` returns
- ``b`` float32 (m, d): bounded-stage inputs (exact ties k+0.5, -0.0, random in range),
  ``b_indices`` int64 (m,): torch.round(b) / half_width through ``codes_to_indices``
- ``half_l``, ``shift`` float32 (d,): the constants torch computes
"""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

import numpy as np
import torch
import vector_quantize_pytorch.finite_scalar_quantization as fsq_module
from vector_quantize_pytorch import FSQ

# The user's set, the FSQ paper's recommended sets (2^8 .. 2^16 codes), and edge cases.
LEVEL_SETS = [
    [8, 6, 5, 5, 4],
    [8] * 8,
    [4, 4, 4],
    [8, 5, 5, 5],
    [7, 5, 5, 5, 5],
    [8, 8, 8, 6, 5],
    [3, 3, 3, 3],
    [8, 6, 5],
    [8, 8, 8, 5, 5, 5],
]
OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "fsq"


def boundary_inputs(levels: list[int], rng: np.random.Generator) -> np.ndarray:
    """Rows where one dimension sits at (or 1-3 ulp beside) a rounding boundary."""
    d = len(levels)
    rows = []
    for i, L in enumerate(levels):
        half_l = (L - 1) * 1.001 / 2
        offset = 0.5 if L % 2 == 0 else 0.0
        shift = np.arctanh(offset / half_l)
        lo, hi = -(L // 2), (L - 1) - L // 2
        for k in range(lo, hi):
            target = (k + 0.5 + offset) / half_l
            z0 = np.float32(np.arctanh(target) - shift)
            for steps in range(-3, 4):
                z = z0
                for _ in range(abs(steps)):
                    z = np.nextafter(z, np.float32(np.inf if steps > 0 else -np.inf))
                row = rng.normal(0, 1, d).astype(np.float32)
                row[i] = z
                rows.append(row)
    return np.asarray(rows, np.float32)


def special_inputs(d: int) -> np.ndarray:
    values = [-0.0, 0.0, 1e3, -1e3, 1e30, -1e30, 3.4e38, -3.4e38, 1e-45, -1e-45, 1e-38, -1e-38]
    return np.array([[v] * d for v in values], np.float32)


def bounded_inputs(levels: list[int], rng: np.random.Generator) -> np.ndarray:
    d = len(levels)
    lv = np.array(levels)
    lo = -(lv // 2)
    hi = (lv - 1) - lv // 2
    ties = []
    for k in range(int(lo.min()), int(hi.max())):
        # Each dimension gets a tie between two of its reachable levels.
        ties.append(np.clip(np.full(d, k + 0.5), lo + 0.5, hi - 0.5).astype(np.float32))
    ties += [np.full(d, -0.5, np.float32), np.full(d, -0.0, np.float32)]
    rand = rng.uniform(lo - 0.49, hi + 0.49, (2000, d)).astype(np.float32)
    return np.concatenate([np.asarray(ties, np.float32), rand])


def generate(levels: list[int], seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    d = len(levels)
    z = np.concatenate([
        rng.normal(0, 1, (4000, d)),
        rng.normal(0, 3, (3000, d)),
        rng.uniform(-10, 10, (2000, d)),
        rng.normal(0, 0.5, (1000, d)),
    ]).astype(np.float32)  # fmt: skip
    z = np.concatenate([z, boundary_inputs(levels, rng), special_inputs(d)])

    fsq = FSQ(levels).eval()
    captured: list[torch.Tensor] = []
    original = fsq_module.round_ste

    def spy(t: torch.Tensor) -> torch.Tensor:
        captured.append(t.detach().clone())
        return original(t)

    fsq_module.round_ste = spy
    try:
        with torch.no_grad():
            zhat, idx = fsq(torch.from_numpy(z).unsqueeze(1))
    finally:
        fsq_module.round_ste = original
    (bounded,) = captured

    b = bounded_inputs(levels, rng)
    lv = torch.tensor(levels)
    with torch.no_grad():
        b_idx = fsq.codes_to_indices(torch.round(torch.from_numpy(b)) / (lv // 2))
        half_l = (fsq._levels - 1) * (1 + 1e-3) / 2
        offset = torch.where(fsq._levels % 2 == 0, 0.5, 0.0)
        shift = torch.atanh(offset / half_l)
    versions = (
        f"torch {torch.__version__}, vector-quantize-pytorch {version('vector-quantize-pytorch')}"
    )
    return {
        "levels": np.array(levels, np.int64),
        "versions": np.array(versions),
        "z": z,
        "bounded": bounded.squeeze(1).numpy().reshape(len(z), d),
        "zhat": zhat.squeeze(1).numpy(),
        "indices": idx.reshape(-1).numpy().astype(np.int64),
        "b": b,
        "b_indices": b_idx.numpy().astype(np.int64),
        "half_l": half_l.numpy().astype(np.float32),
        "shift": shift.numpy().astype(np.float32),
    }


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for seed, levels in enumerate(LEVEL_SETS):
        data = generate(levels, seed)
        path = OUT / f"levels_{'-'.join(map(str, levels))}.npz"
        np.savez_compressed(path, **data)
        print(f"{path.name}: {len(data['z'])} rows, {len(data['b'])} bounded rows")


if __name__ == "__main__":
    main()
