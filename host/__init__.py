"""digit-reader host side: train the MNIST CNN, export it to int8 TFLite, evaluate it (needs TensorFlow)."""
