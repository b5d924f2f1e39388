"""Importing TensorFlow without its C++ start-up lines on the console.

TensorFlow's C++ runtime prints lines such as ``I0000 ... cudart_stub.cc`` and ``WARNING: All log
messages before absl::InitializeLog() ...`` straight to file descriptor 2 while it loads and
first looks for devices, before ``TF_CPP_MIN_LOG_LEVEL`` applies. ``import_tensorflow`` catches
that window's output and passes on everything but those lines. A user who sets
``TF_CPP_MIN_LOG_LEVEL`` gets TensorFlow's own behaviour, unfiltered.
"""

import os
import re
import sys
import tempfile

# glog-style lines (I/W/E + date), absl's pre-initialisation notice, cpu_feature_guard's second line.
NOISE = re.compile(r"^(?:[IWE]\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ \S+:\d+\] "
                   r"|WARNING: All log messages before absl::InitializeLog\(\) is called"
                   r"|To enable the following instructions: .* rebuild TensorFlow)")


def _without_noise(text: str) -> str:
    """Return ``text`` without TensorFlow's C++ start-up lines."""
    return "".join(line for line in text.splitlines(keepends=True) if not NOISE.match(line))


def import_tensorflow():
    """Import TensorFlow and let it find its devices; return the module.

    Unless ``TF_CPP_MIN_LOG_LEVEL`` is set, the C++ start-up lines are dropped and the variable
    is set to 2 (warnings and errors of the runtime stay visible afterwards, its info lines not).
    """
    if "tensorflow" in sys.modules or "TF_CPP_MIN_LOG_LEVEL" in os.environ:
        import tensorflow as tf

        return tf
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow as tf

            tf.config.list_physical_devices()
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            sys.stderr.write(_without_noise(captured.read().decode(errors="replace")))
            sys.stderr.flush()
    return tf
