"""What the processes share and how they signal: the slot buffer (the only data plane), ZeroMQ
messages (the control plane), the process group that owns every child, devices, fault points
and the runner's OS signals. Nothing here knows GAN math."""
