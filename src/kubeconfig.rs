//! Finding and checking the kubeconfig before anything else happens: which
//! file (`--kubeconfig`, else `$KUBECONFIG`, else `~/.kube/config`), which
//! context, and whether its credential plugin can run. Every problem is one
//! plain message that says where devingress looked and how to fix it.

use std::path::{Path, PathBuf};

use kube::config::{KubeConfigOptions, Kubeconfig};

/// How to get a local cluster, or point devingress at one; the fix for a
/// missing kubeconfig.
pub const GET_A_CLUSTER: &str = "To create a local cluster, run one of `kind create cluster`, `minikube start` or \
`k3d cluster create` (each writes ~/.kube/config). To use a cluster you already have, pass \
`--kubeconfig FILE` or set KUBECONFIG, and `--context NAME` to pick a context.";

/// A kubeconfig, read and checked, with the context devingress will use.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The merged kubeconfig.
    pub kubeconfig: Kubeconfig,
    /// The files it came from.
    pub files: Vec<PathBuf>,
    /// The chosen context.
    pub context: String,
    /// That context's cluster name.
    pub cluster: String,
    /// That cluster's API server URL, as the kubeconfig says it.
    pub server: String,
    /// Every context in the kubeconfig.
    pub contexts: Vec<String>,
}

/// What is wrong with the kubeconfig, in words a user can act on.
#[derive(Debug, thiserror::Error)]
pub enum KubeconfigError {
    /// No kubeconfig file exists where devingress looked.
    #[error("no kubeconfig found: looked at {looked}. {GET_A_CLUSTER}")]
    NotFound {
        /// Where it looked, in words ("$KUBECONFIG (unset) and /home/u/.kube/config").
        looked: String,
    },
    /// A kubeconfig file exists but cannot be read or parsed.
    #[error("cannot read the kubeconfig {path}: {reason}. Fix the file, or point --kubeconfig at another one")]
    Unreadable {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// No context was chosen and the kubeconfig has no current one.
    #[error(
        "the kubeconfig {files} has no current context. Pick one with `--context NAME` (it has: {known}), \
         or set it with `kubectl config use-context NAME`"
    )]
    NoContext {
        /// The files.
        files: String,
        /// The contexts it has.
        known: String,
    },
    /// The chosen context is not in the kubeconfig.
    #[error(
        "context {context:?} is not in the kubeconfig {files}. It has: {known}. Pick one with `--context NAME` \
         (`kubectl config get-contexts` lists them)"
    )]
    UnknownContext {
        /// The context asked for.
        context: String,
        /// The files.
        files: String,
        /// The contexts it has.
        known: String,
    },
    /// The context names a cluster or user the kubeconfig does not define.
    #[error("context {context:?} in {files} is incomplete: {reason}. Fix the kubeconfig or pick another context")]
    Incomplete {
        /// The context.
        context: String,
        /// The files.
        files: String,
        /// What is missing.
        reason: String,
    },
    /// The context's credentials come from a program that is not installed.
    #[error(
        "context {context:?} gets its credentials from the program `{command}`, which is not installed \
         (not found{where_}). {hint}"
    )]
    PluginMissing {
        /// The context.
        context: String,
        /// The plugin's command.
        command: String,
        /// Where it was looked for (" on PATH", or " at /path").
        where_: String,
        /// The kubeconfig's `installHint`, or a generic fix.
        hint: String,
    },
}

/// `~/.kube/config`, where kubectl looks when nothing else is named.
pub fn default_path() -> Option<PathBuf> {
    std::env::home_dir().map(|h| h.join(".kube").join("config"))
}

/// Reads the kubeconfig and checks the context: `explicit` (a file), else
/// the files in `$KUBECONFIG` (merged; missing ones are passed over, as
/// kubectl does), else `~/.kube/config`.
pub fn load(explicit: Option<&Path>, context: Option<&str>) -> Result<Loaded, KubeconfigError> {
    let (files, looked) = candidates(explicit, std::env::var_os("KUBECONFIG"));
    load_files(&files, looked, context)
}

/// Reads and merges those of `files` that exist (`looked` says where, for
/// the message when none does) and checks the context.
pub fn load_files(files: &[PathBuf], looked: String, context: Option<&str>) -> Result<Loaded, KubeconfigError> {
    let existing: Vec<PathBuf> = files.iter().filter(|f| f.is_file()).cloned().collect();
    if existing.is_empty() {
        return Err(KubeconfigError::NotFound { looked });
    }
    let mut merged: Option<Kubeconfig> = None;
    for f in &existing {
        let one = Kubeconfig::read_from(f).map_err(|e| KubeconfigError::Unreadable {
            path: f.display().to_string(),
            reason: crate::kubeclient::describe_error(&e),
        })?;
        merged = Some(match merged {
            None => one,
            Some(m) => m.merge(one).map_err(|e| KubeconfigError::Unreadable {
                path: f.display().to_string(),
                reason: crate::kubeclient::describe_error(&e),
            })?,
        });
    }
    let kubeconfig = merged.unwrap_or_default();
    check(kubeconfig, existing, context, crate::programs::on_path)
}

/// The files to read and, for messages, where devingress looked.
fn candidates(explicit: Option<&Path>, env: Option<std::ffi::OsString>) -> (Vec<PathBuf>, String) {
    if let Some(p) = explicit {
        return (vec![p.to_path_buf()], format!("{} (--kubeconfig)", p.display()));
    }
    let from_env: Vec<PathBuf> = env
        .as_deref()
        .map(|v| std::env::split_paths(v).filter(|p| !p.as_os_str().is_empty()).collect())
        .unwrap_or_default();
    if !from_env.is_empty() {
        let list: Vec<String> = from_env.iter().map(|p| p.display().to_string()).collect();
        return (from_env, format!("$KUBECONFIG ({})", list.join(", ")));
    }
    match default_path() {
        Some(d) => {
            let looked = format!("$KUBECONFIG (unset) and {}", d.display());
            (vec![d], looked)
        }
        None => (Vec::new(), "$KUBECONFIG (unset); there is no home directory for ~/.kube/config".into()),
    }
}

/// Picks the context and checks that it is complete and its credential
/// plugin can be found (`on_path` says whether a command is on `PATH`).
fn check(
    kubeconfig: Kubeconfig,
    files: Vec<PathBuf>,
    context: Option<&str>,
    on_path: impl Fn(&str) -> bool,
) -> Result<Loaded, KubeconfigError> {
    let files_text = files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>().join(", ");
    let contexts: Vec<String> = kubeconfig.contexts.iter().map(|c| c.name.clone()).collect();
    let known = if contexts.is_empty() { "no contexts".to_string() } else { contexts.join(", ") };
    let Some(name) =
        context.map(str::to_string).or_else(|| kubeconfig.current_context.clone()).filter(|c| !c.is_empty())
    else {
        return Err(KubeconfigError::NoContext { files: files_text, known });
    };
    let Some(named) = kubeconfig.contexts.iter().find(|c| c.name == name) else {
        return Err(KubeconfigError::UnknownContext { context: name, files: files_text, known });
    };
    let incomplete =
        |reason: String| KubeconfigError::Incomplete { context: name.clone(), files: files_text.clone(), reason };
    let ctx = named.context.as_ref().ok_or_else(|| incomplete("it has no cluster or user".into()))?;
    let server = kubeconfig
        .clusters
        .iter()
        .find(|c| c.name == ctx.cluster)
        .and_then(|c| c.cluster.as_ref())
        .and_then(|c| c.server.clone())
        .ok_or_else(|| incomplete(format!("cluster {:?} has no server address", ctx.cluster)))?;
    let user = ctx.user.as_deref().unwrap_or_default();
    let exec = kubeconfig
        .auth_infos
        .iter()
        .find(|a| a.name == user)
        .and_then(|a| a.auth_info.as_ref())
        .and_then(|a| a.exec.as_ref());
    if let Some(exec) = exec
        && let Some(command) = exec.command.as_deref()
    {
        let has_dir = command.contains('/') || command.contains(std::path::MAIN_SEPARATOR);
        let found = if has_dir { Path::new(command).is_file() } else { on_path(command) };
        if !found {
            let hint = exec.install_hint.clone().map(|h| h.trim().to_string()).unwrap_or_else(|| {
                format!(
                    "Install it (your cluster provider's docs name it), or pick another context with `--context NAME` \
                     (it has: {known})"
                )
            });
            return Err(KubeconfigError::PluginMissing {
                context: name.clone(),
                command: command.to_string(),
                where_: if has_dir { String::new() } else { " on PATH".into() },
                hint,
            });
        }
    }
    Ok(Loaded { cluster: ctx.cluster.clone(), server, context: name, contexts, kubeconfig, files })
}

/// The options that make kube use `loaded`'s context.
pub fn options(loaded: &Loaded) -> KubeConfigOptions {
    KubeConfigOptions { context: Some(loaded.context.clone()), ..KubeConfigOptions::default() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(yaml: &str) -> Kubeconfig {
        Kubeconfig::from_yaml(yaml).unwrap()
    }

    const TWO: &str = "apiVersion: v1\nkind: Config\ncurrent-context: kind-dev\nclusters:\n- name: dev\n  cluster: {server: 'https://127.0.0.1:6443'}\ncontexts:\n- name: kind-dev\n  context: {cluster: dev, user: dev}\n- name: eks\n  context: {cluster: dev, user: aws}\nusers:\n- name: dev\n  user: {token: t}\n- name: aws\n  user:\n    exec:\n      apiVersion: client.authentication.k8s.io/v1beta1\n      command: aws-iam-authenticator-not-here\n      installHint: 'Install it: brew install aws-iam-authenticator'\n";

    fn files() -> Vec<PathBuf> {
        vec![PathBuf::from("/home/u/.kube/config")]
    }

    #[test]
    fn current_context_is_used_with_its_server() {
        let l = check(config(TWO), files(), None, |_| false).unwrap();
        assert_eq!(
            (l.context.as_str(), l.cluster.as_str(), l.server.as_str()),
            ("kind-dev", "dev", "https://127.0.0.1:6443")
        );
        assert_eq!(l.contexts, ["kind-dev", "eks"]);
    }

    #[test]
    fn unknown_context_names_the_file_and_the_contexts_it_has() {
        let e = check(config(TWO), files(), Some("prod"), |_| false).unwrap_err().to_string();
        assert!(e.contains("context \"prod\" is not in the kubeconfig /home/u/.kube/config"), "{e}");
        assert!(e.contains("It has: kind-dev, eks") && e.contains("--context NAME"), "{e}");
    }

    #[test]
    fn missing_exec_plugin_is_named_with_its_install_hint() {
        let e = check(config(TWO), files(), Some("eks"), |_| false).unwrap_err().to_string();
        assert!(e.contains("`aws-iam-authenticator-not-here`, which is not installed (not found on PATH)"), "{e}");
        assert!(e.contains("Install it: brew install aws-iam-authenticator"), "{e}");
        // Found on PATH: fine.
        assert!(check(config(TWO), files(), Some("eks"), |_| true).is_ok());
    }

    #[test]
    fn no_current_context_lists_the_contexts() {
        let yaml = TWO.replace("current-context: kind-dev\n", "");
        let e = check(config(&yaml), files(), None, |_| false).unwrap_err().to_string();
        assert!(e.contains("has no current context") && e.contains("kind-dev, eks"), "{e}");
    }

    #[test]
    fn context_without_a_server_is_incomplete() {
        let yaml = TWO.replace("  cluster: {server: 'https://127.0.0.1:6443'}\n", "  cluster: {}\n");
        let e = check(config(&yaml), files(), None, |_| false).unwrap_err().to_string();
        assert!(e.contains("cluster \"dev\" has no server address"), "{e}");
    }

    #[test]
    fn where_it_looked_follows_kubectl() {
        let (f, looked) = candidates(Some(Path::new("/k")), Some("/a:/b".into()));
        assert_eq!((f, looked.as_str()), (vec![PathBuf::from("/k")], "/k (--kubeconfig)"));
        let (f, looked) = candidates(None, Some("/a::/b".into()));
        assert_eq!(f, [PathBuf::from("/a"), PathBuf::from("/b")]);
        assert_eq!(looked, "$KUBECONFIG (/a, /b)");
        let (_, looked) = candidates(None, Some("".into()));
        assert!(looked.starts_with("$KUBECONFIG (unset) and ") && looked.ends_with(".kube/config"), "{looked}");
    }

    #[test]
    fn nothing_found_says_where_and_how_to_get_a_cluster() {
        let e = KubeconfigError::NotFound { looked: "$KUBECONFIG (unset) and /h/.kube/config".into() }.to_string();
        assert!(e.starts_with("no kubeconfig found: looked at $KUBECONFIG (unset) and /h/.kube/config."), "{e}");
        for fix in ["kind create cluster", "minikube start", "k3d cluster create", "--kubeconfig", "--context"] {
            assert!(e.contains(fix), "{fix}: {e}");
        }
    }
}
