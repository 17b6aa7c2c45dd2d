"""The one place that imports TensorFlow and Keras.

tfmot 0.8.1 only understands Keras 2 (tf_keras). TensorFlow 2.21 binds ``tf.keras`` to Keras 3 unless
``TF_USE_LEGACY_KERAS=1`` is set *before TensorFlow is first imported*, so this module sets it and every other
module takes ``tf`` and ``keras`` from here. Never write ``tf.keras`` anywhere: it is a different module object.
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
# TensorFlow's C++ INFO lines (oneDNN, CUDA stubs) drown the progress output of every command.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402

__all__ = ["keras", "tf"]
