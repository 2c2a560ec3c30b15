"""The roles of Algorithm 1 (generator k, discriminator D, classifier C): plain PyTorch steps on a
:class:`~sharedgan.runtime.buffer.SlotBuffer`. They know nothing of processes or signals, so every
engine runs the very same steps; ``build`` makes their models, optimisers and data from the config."""
