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
    let cfg = portico_datapath::AgentConfig::new(args.node_name.clone(), node_ips);
    let (p, sd) = (parts.snapshots.clone(), parts.shutdown.clone());
    match args.datapath {
        portico_datapath::Kind::Userspace => {
            use portico_datapath::Datapath as _;
            let datapath = portico_datapath::UserspaceDatapath::new(cfg, p.clone(), sd.clone());
            let status = datapath.status();
            parts.admin(|a| a.with_published_view("datapath", status));
            parts.tasks.spawn(async move {
                datapath.run(p, sd).await;
                Ok(())
            });
        }
    }
}
