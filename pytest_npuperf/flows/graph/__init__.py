"""Graph mode: the model's decode step compiled (torch.compile with the device's graph backend)
over transformers' static KV cache, as production inference runs on a device."""
