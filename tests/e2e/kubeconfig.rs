//! What a newcomer sees when the kubeconfig is missing or does not work:
//! one plain message that says where devingress looked and how to fix it,
//! nothing created, and a non-zero exit. An API server that does not answer
//! is said once too, and `up` keeps retrying.

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use tokio::process::Command;

use crate::support::cluster::TestCluster;
use crate::support::devingress::{BIN, Devingress, eventually, get};

/// Runs `devingress args…` with a home, data and runtime directory of its
/// own under `dir` and no `$KUBECONFIG`, and waits for it to exit.
async fn devingress(dir: &Path, args: &[&str]) -> Output {
    let run = Command::new(BIN)
        .args(args)
        .env_remove("KUBECONFIG")
        .env("HOME", dir.join("home"))
        .env("DEVINGRESS_DATA_DIR", dir.join("data"))
        .env("DEVINGRESS_RUNTIME_DIR", dir.join("run"))
        .env("DEVINGRESS_SYSTEM_ROOT", dir.join("system"))
        .env("NO_COLOR", "1")
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(Duration::from_secs(30), run).await.expect("exits within 30s").unwrap()
}

/// Asserts that the run failed and created none of devingress's files.
fn failed_creating_nothing(dir: &Path, out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "exits non-zero: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    for made in ["data", "run", "system"] {
        assert!(!dir.join(made).exists(), "{made} was created before the kubeconfig was checked: {stderr}");
    }
    stderr
}

const UP: &[&str] = &["up", "--http-port", "0", "--https-port", "0", "--dns-port", "0"];

fn with(base: &[&str], more: &[&str]) -> Vec<String> {
    base.iter().chain(more).map(|s| s.to_string()).collect()
}

async fn run(dir: &Path, args: Vec<String>) -> Output {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    devingress(dir, &args).await
}

#[tokio::test]
async fn no_kubeconfig_says_once_where_it_looked_and_how_to_get_a_cluster() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("home")).unwrap();
    for args in [UP, &["routes"], &["doctor"]] {
        let out = devingress(dir.path(), args).await;
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let said = format!("{stdout}{stderr}");
        assert!(!out.status.success(), "{args:?} exits non-zero: {said}");
        let looked = format!(
            "no kubeconfig found: looked at $KUBECONFIG (unset) and {}",
            dir.path().join("home/.kube/config").display()
        );
        assert_eq!(said.matches(&looked).count(), 1, "{args:?} says it once: {said}");
        for fix in
            ["kind create cluster", "minikube start", "k3d cluster create", "--kubeconfig FILE", "--context NAME"]
        {
            assert!(said.contains(fix), "{args:?} names {fix}: {said}");
        }
        assert!(!said.contains("No such file or directory"), "{args:?}: {said}");
        assert!(!said.contains("panicked"), "{said}");
    }
    failed_creating_nothing(dir.path(), &devingress(dir.path(), UP).await);

    // An explicit file that does not exist is named as such.
    let out = run(dir.path(), with(UP, &["--kubeconfig", "/nonexistent/kubeconfig"])).await;
    let stderr = failed_creating_nothing(dir.path(), &out);
    assert!(stderr.contains("no kubeconfig found: looked at /nonexistent/kubeconfig (--kubeconfig)"), "{stderr}");
}

#[tokio::test]
async fn unknown_context_lists_the_contexts_there_are() {
    let c = TestCluster::start().await;
    let dir = tempfile::tempdir().unwrap();
    let kc = c.kubeconfig.display().to_string();
    for cmd in [UP, &["routes"]] {
        let out = run(dir.path(), with(cmd, &["--kubeconfig", &kc, "--context", "nope"])).await;
        let stderr = failed_creating_nothing(dir.path(), &out);
        assert!(
            stderr.contains(&format!("context \"nope\" is not in the kubeconfig {kc}. It has: fake, fake-again.")),
            "{stderr}"
        );
        assert!(stderr.contains("kubectl config get-contexts"), "{stderr}");
    }
}

#[tokio::test]
async fn expired_credentials_end_the_run_with_how_to_get_fresh_ones() {
    let c = TestCluster::start().await;
    let dir = tempfile::tempdir().unwrap();
    let expired = dir.path().join("kubeconfig");
    let text = std::fs::read_to_string(&c.kubeconfig).unwrap();
    let token = text.lines().find_map(|l| l.trim().strip_prefix("token: ")).unwrap().to_string();
    std::fs::write(&expired, text.replace(&token, "an-expired-token")).unwrap();
    let out = run(dir.path(), with(UP, &["--kubeconfig", &expired.display().to_string()])).await;
    let stderr = failed_creating_nothing(dir.path(), &out);
    assert!(
        stderr.contains(&format!(
            "the API server at {}/ refused the credentials of context fake (401 Unauthorized)",
            c.api.url().trim_end_matches('/')
        )),
        "{stderr}"
    );
    for fix in ["kind export kubeconfig", "minikube update-context", "aws eks update-kubeconfig"] {
        assert!(stderr.contains(fix), "names {fix}: {stderr}");
    }
    assert_eq!(stderr.matches("refused the credentials").count(), 1, "{stderr}");
}

/// A kubeconfig whose user gets its token from `command` (an exec plugin).
fn exec_kubeconfig(c: &TestCluster, dir: &Path, command: &str, hint: &str) -> std::path::PathBuf {
    let text = std::fs::read_to_string(&c.kubeconfig).unwrap();
    let token = text.lines().find_map(|l| l.trim().strip_prefix("token: ")).unwrap().to_string();
    let exec = format!(
        "    exec:\n      apiVersion: client.authentication.k8s.io/v1beta1\n      command: {command}\n      installHint: '{hint}'\n      interactiveMode: Never\n"
    );
    let path = dir.join("kubeconfig");
    std::fs::write(&path, text.replace(&format!("    token: {token}\n"), &exec)).unwrap();
    path
}

#[tokio::test]
async fn a_missing_credential_plugin_is_named_with_its_install_hint() {
    let c = TestCluster::start().await;
    let dir = tempfile::tempdir().unwrap();
    let kc =
        exec_kubeconfig(&c, dir.path(), "devingress-test-auth-plugin", "Install it with: apt-get install the-plugin");
    for cmd in [UP, &["routes"]] {
        let out = run(dir.path(), with(cmd, &["--kubeconfig", &kc.display().to_string()])).await;
        let stderr = failed_creating_nothing(dir.path(), &out);
        assert!(
            stderr.contains(
                "context \"fake\" gets its credentials from the program `devingress-test-auth-plugin`, which is not \
                 installed (not found on PATH). Install it with: apt-get install the-plugin"
            ),
            "{stderr}"
        );
    }
}

#[tokio::test]
async fn a_credential_plugin_that_fails_is_quoted_and_one_that_works_is_used() {
    let mut c = TestCluster::start().await;
    c.examples().await;
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(&c.kubeconfig).unwrap();
    let token = text.lines().find_map(|l| l.trim().strip_prefix("token: ")).unwrap().to_string();
    let plugin = dir.path().join("auth-plugin");
    let mode = dir.path().join("plugin-mode");
    std::fs::write(
        &plugin,
        format!(
            "#!/bin/sh\nif [ \"$(cat {mode})\" = fail ]; then echo 'error: you are not logged in; run: cloud login' >&2; exit 1; fi\n\
             echo '{{\"apiVersion\":\"client.authentication.k8s.io/v1beta1\",\"kind\":\"ExecCredential\",\"status\":{{\"token\":\"{token}\"}}}}'\n",
            mode = mode.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&plugin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let kc = exec_kubeconfig(&c, dir.path(), &plugin.display().to_string(), "");

    std::fs::write(&mode, "fail").unwrap();
    let out = run(dir.path(), with(UP, &["--kubeconfig", &kc.display().to_string()])).await;
    let stderr = failed_creating_nothing(dir.path(), &out);
    assert!(stderr.contains("the credential plugin of context \"fake\" failed"), "{stderr}");
    assert!(stderr.contains("you are not logged in; run: cloud login"), "{stderr}");

    std::fs::write(&mode, "ok").unwrap();
    let d = Devingress::up(&kc, &[]).await;
    let served =
        eventually(Duration::from_secs(15), || async { get(d.port, "alpaca.example.com", "/").await.status == 200 })
            .await;
    assert!(served, "served with the plugin's token:\n{}", d.log());
}
