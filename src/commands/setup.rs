//! `devingress setup`: explains the one-time privileged steps, then does
//! them (through sudo when not root), or takes them back with `--undo`.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{Context, bail};

use crate::cli::SetupArgs;
use crate::resolver::SystemPaths;
use crate::setup::{self, Platform};

/// Runs `devingress setup`.
pub fn run(args: SetupArgs) -> anyhow::Result<()> {
    let sys = SystemPaths::from_env();
    let user = setup::invoking_user();
    let exe = std::env::current_exe().context("cannot tell where the devingress binary is")?;
    let exe = exe.canonicalize().unwrap_or(exe);
    let mut steps = setup::plan(&Platform::detect(&sys), &user, &exe);
    if args.system_only {
        steps.retain(|s| !s.per_user);
    }
    let changes = steps.iter().any(|s| !s.actions.is_empty());
    if !args.explained {
        if args.undo {
            println!("devingress setup --undo takes back what `devingress setup` changed for {}:", user.name);
        } else {
            println!(
                "devingress setup: the one-time privileged steps for {}, so that `devingress up` needs no sudo:",
                user.name
            );
        }
        print!("{}", setup::explain(&steps));
        if !sys.is_real() {
            println!("(system files under {})", sys.root.display());
        }
    }
    if args.dry_run {
        return Ok(());
    }
    if !changes {
        println!("nothing to change on this machine");
        return Ok(());
    }
    if !args.yes {
        if !std::io::stdin().is_terminal() {
            bail!("not asking on a non-interactive stdin: pass --yes to go ahead, or --dry-run to only explain");
        }
        print!("Go ahead? [y/N] ");
        std::io::stdout().flush()?;
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            println!("nothing changed");
            return Ok(());
        }
    }
    if sys.is_real() && !setup::is_root() && !cfg!(windows) {
        println!("running these steps with sudo:");
        let mut cmd = std::process::Command::new("sudo");
        cmd.arg("--").arg(&exe).args(["setup", "--yes", "--explained"]);
        if args.undo {
            cmd.arg("--undo");
        }
        if args.system_only {
            cmd.arg("--system-only");
        }
        let status = cmd.status().context("cannot run sudo")?;
        if !status.success() {
            bail!("the privileged steps did not complete ({status})");
        }
        return Ok(());
    }
    let mut say = |line: String| println!("{line}");
    if args.undo {
        let errors = setup::undo(&steps, &sys, &mut say);
        if !errors.is_empty() {
            bail!("{} change(s) could not be taken back (see above)", errors.len());
        }
        println!("done: everything `devingress setup` changed is taken back");
    } else {
        setup::apply(&steps, &user, &sys, &mut say).context("setup stopped")?;
        println!(
            "done: `devingress up` now runs without sudo; `devingress doctor` checks it, `devingress setup --undo` takes it back"
        );
    }
    Ok(())
}
