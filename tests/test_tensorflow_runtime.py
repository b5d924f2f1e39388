"""TensorFlow's C++ start-up lines are recognised; everything else passes."""

from pipeline.tensorflow_runtime import _without_noise

STARTUP = (
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
    "I0000 00:00:1795838784.332627    2638 cudart_stub.cc:31] Could not find cuda drivers on your machine.\n"
    "I0000 00:00:1795838784.964126    2638 cpu_feature_guard.cc:227] This TensorFlow binary is optimized.\n"
    "To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow with the "
    "appropriate compiler flags.\n"
    "E0000 00:00:1795838788.500642    2638 cuda_platform.cc:52] failed call to cuInit: UNKNOWN ERROR (303)\n"
    "W1128 04:06:28.501000    2638 port.cc:153] oneDNN custom operations are on.\n"
)


def test_startup_lines_are_dropped_and_other_output_kept():
    other = "DeprecationWarning: something a user should see\nTraceback (most recent call last):\n"
    assert _without_noise(STARTUP + other) == other


def test_lines_that_merely_mention_tensorflow_are_kept():
    text = "INFO: I0000 is not at the start of this line\nWARNING: retracing tf.function\n"
    assert _without_noise(text) == text
