//! `devingress ca path|show`, `devingress trust` and `devingress untrust`.

use std::path::PathBuf;

use anyhow::Context;

use crate::paths::Paths;
use crate::tls::LocalCa;
use crate::truststore::{self, Outcome};

fn load(data_dir: Option<PathBuf>) -> anyhow::Result<(Paths, LocalCa)> {
    let paths = Paths::resolve(data_dir)?;
    let (ca, created) = LocalCa::load_or_create(&paths).context("cannot set up the local CA")?;
    if created {
        eprintln!("created the local CA {} at {}", ca.subject, paths.ca_cert().display());
    }
    Ok((paths, ca))
}

/// Prints the CA certificate's path and nothing else.
pub fn path(data_dir: Option<PathBuf>) -> anyhow::Result<()> {
    let (paths, _) = load(data_dir)?;
    println!("{}", paths.ca_cert().display());
    Ok(())
}

/// Prints the CA's name, fingerprint, expiry and where it is trusted.
pub fn show(data_dir: Option<PathBuf>) -> anyhow::Result<()> {
    let (paths, ca) = load(data_dir)?;
    println!("name:        {}", ca.subject);
    println!("certificate: {}", paths.ca_cert().display());
    println!("SHA-256:     {}", ca.fingerprint);
    println!("expires:     {}", ca.not_after.date());
    for (store, trusted) in truststore::report(&ca, &paths.ca_cert()) {
        println!("{:<12} {store} ({})", "trust:", if trusted { "trusted" } else { "not trusted" });
    }
    Ok(())
}

/// Installs the CA into every store, saying what each step changed.
pub fn trust(data_dir: Option<PathBuf>, install: bool) -> anyhow::Result<()> {
    let (paths, ca) = load(data_dir)?;
    let ca_path = paths.ca_cert();
    let verb = if install { "trust" } else { "untrust" };
    println!("{} {} ({})", if install { "Trusting" } else { "Removing" }, ca.subject, ca.fingerprint);
    let mut failed = 0;
    let mut to_run = Vec::new();
    for store in truststore::stores() {
        let result = if install { store.install(&ca, &ca_path) } else { store.uninstall(&ca, &ca_path) };
        match result {
            Ok(Outcome::Changed(what)) => println!("  {}: {what}", store.name()),
            Ok(Outcome::Unchanged(what)) => println!("  {}: nothing to do ({what})", store.name()),
            Ok(Outcome::Skipped(why)) => println!("  {}: skipped ({why})", store.name()),
            Ok(Outcome::RunYourself(cmd)) => {
                println!("  {}: needs privileges; run: {cmd}", store.name());
                to_run.push(cmd);
            }
            Err(e) => {
                println!("  {}: failed: {e}", store.name());
                failed += 1;
            }
        }
    }
    if !to_run.is_empty() {
        println!("\nTo finish, run:\n  {}", to_run.join("\n  "));
    }
    if failed > 0 {
        anyhow::bail!("{verb} failed in {failed} store(s)");
    }
    Ok(())
}
