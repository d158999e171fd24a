//! `<state-dir>/lb-allocations.json`: the standalone allocator's memory across restarts.
//! Written atomically (temporary file, fsync, rename), only when assignments change.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use portico_model::ObjectKey;
use serde::{Deserialize, Serialize};

use crate::Assignment;

pub const FILE_NAME: &str = "lb-allocations.json";
const VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum StateFileError {
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a valid allocation state file (move it away to start afresh)")]
    Corrupt {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{path} has version {found}; this build reads version {VERSION}")]
    Version { path: PathBuf, found: u32 },
    #[error("cannot write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

#[derive(Debug, Serialize, Deserialize)]
struct Entry {
    namespace: String,
    name: String,
    pool: String,
    ips: Vec<IpAddr>,
}

#[derive(Debug, Serialize, Deserialize)]
struct File {
    version: u32,
    /// Pools accepted when the file was written: they win overlaps after a restart too.
    pools: Vec<String>,
    assignments: Vec<Entry>,
}

/// What the file holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Saved {
    pub pools: Vec<String>,
    pub assignments: BTreeMap<ObjectKey, Assignment>,
}

pub fn path_in(dir: &Path) -> PathBuf {
    dir.join(FILE_NAME)
}

/// Read the file; a missing file is an empty state.
pub fn load(path: &Path) -> Result<Saved, StateFileError> {
    let text = match std::fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Saved::default()),
        Err(source) => {
            return Err(StateFileError::Read {
                path: path.to_owned(),
                source,
            });
        }
    };
    let file: File = serde_json::from_slice(&text).map_err(|source| StateFileError::Corrupt {
        path: path.to_owned(),
        source,
    })?;
    if file.version != VERSION {
        return Err(StateFileError::Version {
            path: path.to_owned(),
            found: file.version,
        });
    }
    let assignments = file
        .assignments
        .into_iter()
        .map(|e| {
            (
                ObjectKey::new(e.namespace, e.name),
                Assignment {
                    pool: e.pool,
                    ips: e.ips,
                },
            )
        })
        .collect();
    Ok(Saved {
        pools: file.pools,
        assignments,
    })
}

/// Replace the file atomically: readers (and a crash at any point) see the old or the new
/// content, never a mix.
pub fn store(path: &Path, saved: &Saved) -> Result<(), StateFileError> {
    let file = File {
        version: VERSION,
        pools: saved.pools.clone(),
        assignments: saved
            .assignments
            .iter()
            .map(|(k, a)| Entry {
                namespace: k.namespace.clone(),
                name: k.name.clone(),
                pool: a.pool.clone(),
                ips: a.ips.clone(),
            })
            .collect(),
    };
    let write_err = |source| StateFileError::Write {
        path: path.to_owned(),
        source,
    };
    let text = serde_json::to_vec_pretty(&file).map_err(|e| write_err(std::io::Error::other(e)))?;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(write_err)?;
    let tmp = dir.join(format!(".{FILE_NAME}.tmp"));
    let mut f = std::fs::File::create(&tmp).map_err(write_err)?;
    f.write_all(&text).map_err(write_err)?;
    f.sync_all().map_err(write_err)?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(write_err)?;
    // Make the rename itself durable. Best effort: some filesystems refuse to fsync a directory,
    // and the file content is already safe.
    if let Ok(d) = std::fs::File::open(dir)
        && let Err(e) = d.sync_all()
    {
        tracing::debug!(dir = %dir.display(), error = %e, "directory fsync refused");
    }
    Ok(())
}
