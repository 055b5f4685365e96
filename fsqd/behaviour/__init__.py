"""Behaviour from codes: calibrated probabilities, conformal sets, behaviour states, code health.

The offline side (``fsqd model calibrate``/``evaluate``) fits what the card's ``calibration``
section holds; the online side applies it per window in the daemon and in replay.
"""
