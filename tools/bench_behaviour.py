"""The behaviour layer: its cost per window, and its states against the simulator's truth.

A semi-Markov model is fitted (``fit_semi_markov``) to the simulator's labels on seeds 9001
to 9004; the numbers are from ten other seeds (1 to 10), 30 minutes each, through the
bundled model. Per seed: state changes per hour against the true behaviour changes,
window accuracy of the state and of the per-window argmax, and the median transition
delay (``fsqd.behaviour.segments``). The cost is the tracker's ``push`` per window
(explicit-duration HMM, fixed-lag smoothing, segment bookkeeping), timed over every window
of a seed, plus the calibrated softmax and conformal set the daemon computes per batch.

    .venv/bin/python tools/bench_behaviour.py [--seeds 10] [--minutes 30] [--lag 1.0]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from behaviourkit import sim_windows, step_s, with_semi_markov

from fsqd.behaviour.segments import segment_report
from fsqd.behaviour.sets import prediction_sets, softmax
from fsqd.behaviour.tracker import BehaviourTracker, TrackerSettings, window_states
from fsqd.model.calibration import ConformalSpec


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--lag", type=float, default=TrackerSettings.lag_s)
    ap.add_argument("--min-dwell", type=float, default=TrackerSettings.min_dwell_s)
    args = ap.parse_args()
    t0 = time.perf_counter()
    pkg = with_semi_markov()
    card = pkg.card
    assert card.head is not None and card.calibration is not None
    sm = card.calibration.semi_markov
    step = step_s(pkg)
    window_s = card.window / card.sample_rate_hz
    settings = dataclasses.replace(TrackerSettings(), lag_s=args.lag, min_dwell_s=args.min_dwell)
    print(
        f"fitted the semi-Markov model in {time.perf_counter() - t0:.1f} s; step {step} s, "
        f"window {window_s} s, lag {args.lag} s, min dwell (fall-back) {args.min_dwell} s"
    )
    truth, argmax, hsmm, hyst = [], [], [], []
    costs, set_costs = [], []
    spec = ConformalSpec("lac", 0.9, 0.5)
    for seed in range(1, args.seeds + 1):
        w = sim_windows(pkg, seed, args.minutes * 60)
        assert w.logits is not None
        probs = softmax(w.logits, card.calibration.temperature, card.calibration.bias)
        truth.append(w.truth)
        argmax.append(probs.argmax(1))
        hsmm.append(window_states(probs, sm, step, settings))
        hyst.append(window_states(probs, None, step, settings))
        tracker = BehaviourTracker(card.head.labels, sm, step, settings)
        t_start, t_end = w.t_start.tolist(), w.t_end.tolist()
        rows = list(probs)
        t = time.perf_counter()
        for i, p in enumerate(rows):
            tracker.push(i, t_start[i], t_end[i], p)
        costs.append((time.perf_counter() - t) / len(rows))
        t = time.perf_counter()
        for i in range(0, len(rows), 8):  # the daemon's batches: a few windows at a time
            prediction_sets(softmax(w.logits[i : i + 8], 1.0), spec)
        set_costs.append((time.perf_counter() - t) / len(rows))
    lag_steps = round(args.lag / step)
    dwell_steps = max(1, round(args.min_dwell / step))
    for name, states, lag in (
        ("explicit-duration HMM", hsmm, lag_steps * step),
        ("hysteresis (no duration model)", hyst, (dwell_steps - 1) * step),
    ):
        r = segment_report(truth, states, argmax, step_s=step, window_s=window_s, lag_s=lag)
        cph, acc, dl = r["changes_per_hour"], r["accuracy"], r["transition_delay_s"]
        print(f"\n{name}: {r['windows']} windows, {r['hours']:.2f} h, seeds 1..{args.seeds}")
        print(
            f"  changes per hour: truth {cph['truth']:.0f}, state {cph['state']:.0f} "
            f"({r['change_ratio']:.2f}x), per-window argmax {cph['argmax']:.0f} "
            f"({cph['argmax'] / cph['truth']:.2f}x)"
        )
        print(f"  window accuracy: state {acc['state']:.4f}, argmax {acc['argmax']:.4f}")
        print(
            f"  transition delay: median {dl['median']:.2f} s, p90 {dl['p90']:.2f} s "
            f"(bound lag + half a window = {dl['bound']:.2f} s); {dl['missed']} of "
            f"{dl['changes'] + dl['missed']} changes missed"
        )
    us = np.array(costs) * 1e6
    print(
        f"\ncost per window: tracker {np.median(us):.1f} us (median of seeds, max {us.max():.1f}),"
        f" softmax + conformal set {np.median(set_costs) * 1e6:.1f} us"
    )


if __name__ == "__main__":
    main()
