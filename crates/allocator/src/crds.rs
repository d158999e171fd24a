//! The CustomResourceDefinitions Portico reads, generated from the Rust types in
//! `portico_model::metallb`. `helm/portico/crds/` holds the same text; a test fails when the
//! committed files drift from the types (regenerate with `lb-controller crds --out helm/portico/crds`).

use std::path::Path;

use kube::CustomResourceExt;
use portico_model::metallb::{IPAddressPool, L2Advertisement};

const HEADER: &str = "# Generated from the Rust types by `lb-controller crds`; do not edit.\n";

/// Every CRD as `(file name, YAML)`.
pub fn all() -> Result<Vec<(&'static str, String)>, serde_norway::Error> {
    Ok(vec![
        (
            "metallb.io_ipaddresspools.yaml",
            yaml(&IPAddressPool::crd())?,
        ),
        (
            "metallb.io_l2advertisements.yaml",
            yaml(&L2Advertisement::crd())?,
        ),
    ])
}

fn yaml<T: serde::Serialize>(crd: &T) -> Result<String, serde_norway::Error> {
    Ok(format!("{HEADER}{}", serde_norway::to_string(crd)?))
}

/// All CRDs as one multi-document stream (what `lb-controller crds` prints).
pub fn stream() -> Result<String, serde_norway::Error> {
    Ok(all()?
        .into_iter()
        .map(|(_, y)| format!("---\n{y}"))
        .collect())
}

/// Write every CRD into `dir`.
pub fn write_to(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    for (name, text) in all()? {
        std::fs::write(dir.join(name), text)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn committed_crds_match_the_rust_types() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../helm/portico/crds");
        for (name, generated) in all().expect("CRDs serialise") {
            let committed = std::fs::read_to_string(dir.join(name)).unwrap_or_default();
            assert!(
                committed == generated,
                "helm/portico/crds/{name} is out of date with portico_model::metallb; \
                 run `cargo run -p portico-lb-controller -- crds --out helm/portico/crds`"
            );
        }
    }

    #[test]
    fn crds_describe_the_metallb_fields() {
        let text = stream().expect("CRDs serialise");
        for needle in [
            "name: ipaddresspools.metallb.io",
            "avoidBuggyIPs",
            "serviceAllocation",
            "assignedIPv4",
            "name: l2advertisements.metallb.io",
            "ipAddressPoolSelectors",
        ] {
            assert!(text.contains(needle), "missing {needle}");
        }
        // Every document parses back as a CRD.
        for (name, y) in all().expect("CRDs serialise") {
            let crd: k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition =
                serde_norway::from_str(&y).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(crd.spec.group, "metallb.io");
        }
    }
}
