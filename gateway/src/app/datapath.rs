//! The Service datapath of this node: ClusterIP and NodePort forwarding.

use std::net::{IpAddr, Ipv4Addr};

use super::parts::Parts;
use crate::cli::RunArgs;

/// Start the datapath unless `--no-service-proxy`. Standalone without `--node-ip`, NodePorts
/// are served on loopback.
pub(super) fn start(parts: &mut Parts, args: &RunArgs, standalone: bool) {
    if args.no_service_proxy {
        return;
    }
    let node_ips = if args.node_ips.is_empty() && standalone {
        vec![IpAddr::V4(Ipv4Addr::LOCALHOST)]
    } else {
        args.node_ips.clone()
    };
    let datapath = portico_datapath::userspace::Datapath::new(
        portico_datapath::userspace::AgentConfig::new(args.node_name.clone(), node_ips),
    );
    let status = datapath.status();
    parts.admin(|a| a.with_published_view("datapath", status));
    let (p, sd) = (parts.snapshots.clone(), parts.shutdown.clone());
    parts.tasks.spawn(async move {
        datapath.run(p, sd).await;
        Ok(())
    });
}
