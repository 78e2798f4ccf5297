//! The subcommands, at the CLI edge: they wire the modules together and
//! turn errors into messages with `anyhow` context.

pub mod ca;
pub mod control;
pub mod doctor;
pub mod routes;
pub mod setup;
pub mod up;

use std::time::Duration;

use anyhow::Context;
use kube::Client;

use crate::cli::ClusterArgs;
use crate::kubeclient::{self, ClusterInfo, describe_error};

/// Loads the kubeconfig, says which cluster it is, and starts checking in
/// the background that the API server answers. An unreachable server is
/// reported, not fatal: the watchers keep retrying.
pub async fn connect(args: &ClusterArgs) -> anyhow::Result<(Client, ClusterInfo)> {
    let (client, info) = kubeclient::connect(&args.kube_options()).await.context("cannot connect to the cluster")?;
    tracing::info!("connecting to cluster {} (context {}) at {}", info.cluster, info.context, info.server);
    tokio::spawn(check_version(client.clone(), info.clone()));
    Ok((client, info))
}

/// Says which Kubernetes version answers, or that none does yet.
async fn check_version(client: Client, info: ClusterInfo) {
    match tokio::time::timeout(Duration::from_secs(10), client.apiserver_version()).await {
        Ok(Ok(v)) => {
            tracing::info!("connected: Kubernetes {}", v.git_version);
            let _ = info.version.set(v.git_version);
        }
        Ok(Err(e)) => tracing::warn!(
            "cannot reach the API server at {}: {}; retrying with backoff",
            info.server,
            describe_error(&e)
        ),
        Err(_) => tracing::warn!("the API server at {} did not answer within 10s; retrying with backoff", info.server),
    }
}
