//! `devingress up`: watch the cluster and serve its Ingresses.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::watch;

use crate::cli::UpArgs;
use crate::cluster::ClusterWatch;
use crate::listen::{self, PortChoice};
use crate::progress::Progress;
use crate::proxy::{self, Proxy};
use crate::routes::{self, RouteTable, Target};
use crate::upstream::{Key, Upstream};

/// Bursts of watch events (the first list delivers one per object) are
/// folded into one rebuild this long after the first of them.
const REBUILD_DELAY: Duration = Duration::from_millis(20);

/// Runs until `shutdown` resolves, then shuts down gracefully.
pub async fn run(args: UpArgs, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    if !args.listen.is_loopback() {
        tracing::warn!(
            "listening on {}, which is not loopback: other machines can reach your cluster's Ingresses",
            args.listen
        );
    }
    // Bind first: a port problem should end the run before anything else.
    let http_choice = PortChoice { explicit: args.http_port, default: 80, fallback: 8080, flag: "--http-port" };
    let listener = listen::bind(args.listen, http_choice).await.context("cannot serve HTTP")?;
    let (client, info) = super::connect(&args.cluster).await?;
    let watch = ClusterWatch::start(client.clone(), &args.cluster.namespaces, &info.server);
    let health = watch.health();

    let (table_tx, table_rx) = watch::channel(Arc::new(RouteTable::default()));
    let changed = watch.changed();
    tokio::spawn(async move {
        let mut progress = Progress::default();
        loop {
            let table = routes::build(&watch.snapshot());
            progress.report(&table);
            if table_tx.send(Arc::new(table)).is_err() {
                break;
            }
            changed.notified().await;
            tokio::time::sleep(REBUILD_DELAY).await;
        }
    });

    let upstream = Upstream::new(client, args.pool.settings());
    tokio::spawn(follow_endpoints(table_rx.clone(), upstream.clone()));

    let addr = listener.local_addr()?;
    tracing::info!("serving HTTP on http://{addr}");
    let proxy = Arc::new(Proxy { table: table_rx, upstream, health: Some(health), proto: "http" });
    proxy::serve(listener, proxy, shutdown, args.shutdown_timeout).await;
    tracing::info!("stopped");
    Ok(())
}

/// Tells the pool which pod ports the table routes to, after every change:
/// connections to pods that left are closed, new ones are warmed.
async fn follow_endpoints(mut table: watch::Receiver<Arc<RouteTable>>, upstream: Upstream) {
    loop {
        let keys: Vec<Key> = {
            let t = table.borrow_and_update();
            t.backends()
                .iter()
                .flat_map(|b| match &b.target {
                    Target::Pods { ready, .. } => {
                        ready.iter().map(|ep| Key { endpoint: ep.clone(), protocol: b.protocol }).collect()
                    }
                    _ => Vec::new(),
                })
                .collect()
        };
        upstream.pool().set_live(&keys);
        if table.changed().await.is_err() {
            return;
        }
    }
}
