//! The subcommands, at the CLI edge: they wire the modules together and
//! turn errors into messages with `anyhow` context.

pub mod ca;
pub mod control;
pub mod doctor;
pub mod routes;
pub mod setup;
pub mod up;

use std::time::Duration;

use kube::Client;

use crate::cli::ClusterArgs;
use crate::kubeclient::{self, ClusterInfo};
use crate::kubeconfig::Loaded;

/// How long the first question to the API server may take before `up`
/// goes on without an answer (and keeps asking in the background).
const FIRST_PROBE: Duration = Duration::from_secs(5);

/// Builds a client for an already checked kubeconfig, says which cluster it
/// is, and asks the API server for its version. Credentials that the API
/// server refuses, or a credential plugin that fails, end the command with
/// the fix. An API server that does not answer is said once, plainly; the
/// command goes on and the watchers keep retrying with backoff.
pub async fn connect_loaded(loaded: Loaded) -> anyhow::Result<(Client, ClusterInfo)> {
    let (client, mut info) = kubeclient::connect_loaded(loaded).await?;
    tracing::info!("connecting to cluster {} (context {}) at {}", info.cluster, info.context, info.server);
    match kubeclient::probe(&client, &info, FIRST_PROBE).await {
        Ok(version) => {
            tracing::info!("connected: Kubernetes {version}");
            let _ = info.version.set(version);
        }
        Err(e) if e.is_transient() => {
            tracing::warn!("{e}; retrying with backoff");
            if let kubeclient::ProbeError::Unreachable { reason, .. } = &e {
                info.unreachable = Some(reason.clone());
            }
            tokio::spawn(await_version(client.clone(), info.clone()));
        }
        Err(e) => return Err(e.into()),
    }
    Ok((client, info))
}

/// [`connect_loaded`] after reading and checking the kubeconfig.
pub async fn connect(args: &ClusterArgs) -> anyhow::Result<(Client, ClusterInfo)> {
    connect_loaded(load_kubeconfig(args)?).await
}

/// Reads and checks the kubeconfig that `args` name: the first thing every
/// command that talks to the cluster does.
pub fn load_kubeconfig(args: &ClusterArgs) -> anyhow::Result<Loaded> {
    let opts = args.kube_options();
    Ok(crate::kubeconfig::load(opts.kubeconfig.as_deref(), opts.context.as_deref())?)
}

/// Asks for the version until the API server answers, then says so.
async fn await_version(client: Client, info: ClusterInfo) {
    let mut wait = Duration::from_millis(500);
    loop {
        tokio::time::sleep(wait).await;
        if let Ok(version) = kubeclient::probe(&client, &info, Duration::from_secs(10)).await {
            tracing::info!("connected: Kubernetes {version}");
            let _ = info.version.set(version);
            return;
        }
        wait = (wait * 2).min(Duration::from_secs(5));
    }
}
