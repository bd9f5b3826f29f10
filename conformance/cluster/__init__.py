"""The embedded default: a real single-node Kubernetes made of supervised host processes."""
