"""`chaos matrix`: every scenario on every gateway profile, one `chaos run` per cell."""
