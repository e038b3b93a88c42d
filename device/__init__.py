"""digit-reader device runtime.

camera -> segmentation -> MNIST-style normalization -> int8 inference -> outputs.

Never imports TensorFlow or the host package: this is what runs on the Raspberry Pi.
"""

__version__ = "0.1.0"
