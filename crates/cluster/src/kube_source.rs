//! The Kubernetes API source (kube-rs reflectors).
