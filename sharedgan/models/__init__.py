"""The models: what a factory is given and how one is found (``spec``), the built-in MLPs for 2-D
data and DCGAN models for images, their layers, and MGAN's shared trunk."""
