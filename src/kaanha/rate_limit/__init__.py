"""Rate limits with the `limits` library: per client IP on the API, per recipient on sends."""
