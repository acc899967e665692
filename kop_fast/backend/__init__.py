"""Storage backends. Only Pulsar is implemented; `base` defines what the server needs from one."""
