"""One module per ``fsqd`` command: a function that takes a frozen options dataclass and
returns an exit code, callable as a library (argument parsing is ``fsqd.cli``'s).

The modules are imported on use, not here: ``check-config`` must not load the MQTT
client (``tail``) or onnxruntime (``encode``, ``replay``).
"""

__all__ = [
    "check_config",
    "encode",
    "model_calib",
    "model_compile_script",
    "model_import",
    "model_inspect",
    "model_parity",
    "probe",
    "record",
    "replay",
    "run",
    "simulate",
    "tail",
]
