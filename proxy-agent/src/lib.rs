//! Portico's node agent: kube-proxy's job in user space. ClusterIP:port and nodeIP:nodePort
//! frontends forward TCP and UDP to the endpoints of the current snapshot.

pub mod forward;
pub mod userspace;

#[cfg(test)]
mod test_support;
