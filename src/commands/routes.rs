//! `devingress routes`: print the routing table the cluster produces now.

use std::time::Duration;

use anyhow::bail;

use crate::cli::ClusterArgs;
use crate::cluster::ClusterWatch;
use crate::routes;

/// How long `routes` waits for the first list of every watched kind.
const SYNC_DEADLINE: Duration = Duration::from_secs(20);

/// Lists the objects once, builds the table and prints it to stdout.
pub async fn run(args: ClusterArgs) -> anyhow::Result<()> {
    let (client, info) = super::connect(&args).await?;
    let watch = ClusterWatch::start(client, &args.namespaces, &info.server);
    if !watch.wait_synced(SYNC_DEADLINE).await {
        let why = watch.health().problem().unwrap_or_else(|| "no answer".into());
        bail!("could not list the cluster's objects within {SYNC_DEADLINE:?}: {why}");
    }
    let table = routes::build(&watch.snapshot());
    print!("{}", routes::render(&table));
    Ok(())
}
