"""The upstream witness: what the gateway sent towards its upstreams, joined with what clients saw."""
