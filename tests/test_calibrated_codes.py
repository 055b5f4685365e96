"""Code messages carry the calibrated p (the card's temperature) and the conformal set."""

from __future__ import annotations

import dataclasses
import json

import jsonschema
import numpy as np

from fsqd.behaviour.sets import prediction_sets, softmax
from fsqd.chunk import SampleChunk
from fsqd.model.calibration import Calibration, ConformalSpec
from fsqd.model.package import load_package
from fsqd.pipeline import CodePipeline
from fsqd.sim import SimConfig, simulate
from fsqd.sinks.payload import CodeMessages
from fsqd.sinks.schemas import load
from fsqd.stream.windows import Windower


def test_p_is_calibrated_and_the_set_is_the_cards() -> None:
    bundled = load_package()
    card = dataclasses.replace(bundled.card, calibration=None)  # the raw softmax
    pkg = dataclasses.replace(bundled, card=card)
    assert card.head is not None
    spec = ConformalSpec("aps", 0.9, 0.97)
    cal = Calibration(temperature=3.0, conformal=spec)
    pkg3 = dataclasses.replace(pkg, card=dataclasses.replace(card, calibration=cal))
    rec = simulate(30, SimConfig(seed=5))
    mean, std = card.stream_mean_std()
    x = ((rec.x - mean) / std).astype(np.float32)
    batch = Windower(card.window, card.hop, card.stream_width).push(SampleChunk(rec.t, x, True))
    raw, hot = CodePipeline(pkg, threads=1), CodePipeline(pkg3, threads=1)
    a, b = raw.encode_windows(batch), hot.encode_windows(batch)
    assert raw.head is not None and a.p is not None and a.sets is None
    assert b.p is not None and b.probs is not None and b.sets is not None
    logits = raw.head.logits(a.codes)
    np.testing.assert_array_equal(a.label_id, b.label_id)  # a temperature keeps the argmax
    np.testing.assert_allclose(a.p, softmax(logits).max(1), rtol=1e-6)
    np.testing.assert_allclose(b.probs, softmax(logits, 3.0), rtol=1e-6)
    np.testing.assert_allclose(b.p, b.probs.max(1), rtol=1e-6)
    assert np.all(b.p < a.p)  # flatter
    np.testing.assert_array_equal(b.sets, prediction_sets(b.probs, spec))
    assert b.sets.sum(1).max() > 1  # some windows are ambiguous at T = 3
    lines = CodeMessages("r1", pkg.label, hot.labels)(
        0, b, batch.t_start, batch.t_end, np.zeros(len(b)), None
    )
    v = jsonschema.Draft202012Validator(load("codes"))
    for i, line in enumerate(lines):
        doc = json.loads(line)
        v.validate(doc)
        assert doc["set"] == [n for j, n in enumerate(card.head.labels) if b.sets[i, j]]
        assert doc["p"] == round(float(b.p[i]), 4)
