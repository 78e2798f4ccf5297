//! `devingress routes`: print the routing table the cluster produces now.

use anyhow::bail;

use crate::cli::RoutesArgs;
use crate::cluster::ClusterWatch;
use crate::routes;

/// Lists the objects once, builds the table and prints it to stdout.
pub async fn run(args: RoutesArgs) -> anyhow::Result<()> {
    let (client, info) = super::connect(&args.cluster).await?;
    let watch = ClusterWatch::start(client, &args.cluster.namespaces, &info);
    if !watch.wait_all_synced(args.wait).await {
        let why = watch.health().problem().unwrap_or_else(|| "no answer".into());
        bail!("could not list the cluster's objects within {:?}: {why}", args.wait);
    }
    let table = routes::build_with(&watch.snapshot(), &args.class.policy());
    print!("{}", routes::render(&table));
    Ok(())
}
