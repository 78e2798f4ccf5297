//! The set-up on Linux: the capability to bind ports 80 and 443, and
//! permission to point the resolver at devingress (systemd-resolved or
//! NetworkManager's dnsmasq).

use std::path::{Path, PathBuf};

use super::{Action, MARKER, Step, User};
use crate::resolver::systemd_resolved::LINK;

/// The system unit that creates devingress's link at boot.
pub const LINK_UNIT: &str = "/etc/systemd/system/devingress-link.service";
/// The polkit rule that lets the user change the resolver.
pub const POLKIT_RULE: &str = "/etc/polkit-1/rules.d/50-devingress.rules";
/// NetworkManager's dnsmasq drop-in.
pub const DNSMASQ_DROPIN: &str = "/etc/NetworkManager/dnsmasq.d/devingress.conf";
/// The directory the user owns for files that root's services read.
pub const STATE_DIR: &str = "/var/lib/devingress";
/// The address the link carries: systemd-resolved only uses links with a
/// routable address. One address from 198.18.0.0/15 (RFC 2544's benchmark
/// range, never routed on the internet), as a /32: no route but its own.
pub const LINK_ADDRESS: &str = "198.18.53.53/32";

/// The unit that creates the dummy link.
pub fn link_unit() -> String {
    format!(
        "# {MARKER}\n\
         # A network link with no traffic, on which devingress sets routing domains in systemd-resolved.\n\
         [Unit]\n\
         Description=devingress: link {LINK} for per-domain DNS routing\n\
         Before=systemd-resolved.service\n\
         \n\
         [Service]\n\
         Type=oneshot\n\
         RemainAfterExit=yes\n\
         ExecStart=-ip link add {LINK} type dummy\n\
         ExecStart=ip link set {LINK} up\n\
         ExecStart=-ip address add {LINK_ADDRESS} dev {LINK}\n\
         ExecStop=ip link delete {LINK}\n\
         \n\
         [Install]\n\
         WantedBy=multi-user.target\n"
    )
}

/// A polkit rule that lets `user` take the actions `ids` without a prompt.
pub fn polkit_rule(user: &str, ids: &[&str], what: &str) -> String {
    let list: Vec<String> = ids.iter().map(|i| format!("\"{i}\"")).collect();
    format!(
        "// {MARKER}\n\
         // Lets {user} {what} without a password prompt.\n\
         polkit.addRule(function(action, subject) {{\n    \
             var ids = [{}];\n    \
             if (subject.user == \"{user}\" && ids.indexOf(action.id) >= 0) {{\n        \
                 return polkit.Result.YES;\n    \
             }}\n\
         }});\n",
        list.join(", ")
    )
}

/// The resolved actions `up` takes on its link.
pub const RESOLVED_ACTIONS: &[&str] = &[
    "org.freedesktop.resolve1.set-dns-servers",
    "org.freedesktop.resolve1.set-domains",
    "org.freedesktop.resolve1.set-default-route",
    "org.freedesktop.resolve1.set-dnssec",
    "org.freedesktop.resolve1.set-llmnr",
    "org.freedesktop.resolve1.set-mdns",
    "org.freedesktop.resolve1.revert",
];

fn argv(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| w.to_string()).collect()
}

/// The Linux plan.
pub fn plan(user: &User, exe: &Path, resolved: bool, nm_dnsmasq: bool) -> Vec<Step> {
    let exe = exe.display().to_string();
    let mut steps = vec![Step {
        title: format!("let {exe} bind ports 80 and 443"),
        why: "browsers use http://host and https://host without a port; ports below 1024 need a privilege, \
              and the file capability cap_net_bind_service grants only that one (reinstalling the binary drops it)"
            .into(),
        actions: vec![Action::Run {
            argv: argv(&["setcap", "cap_net_bind_service=+ep", &exe]),
            undo: Some(argv(&["setcap", "-r", &exe])),
        }],
        per_user: false,
    }];
    if resolved {
        steps.push(Step {
            title: format!("add the network link {LINK} for systemd-resolved"),
            why: format!(
                "resolved takes per-domain DNS servers only on a real link (not lo), and setting them on your own \
                 link would replace its DNS servers; {LINK} carries no traffic and only {LINK_ADDRESS}, and a unit \
                 creates it again at boot"
            ),
            actions: vec![
                Action::OnUndo { argv: argv(&["systemctl", "daemon-reload"]) },
                Action::WriteFile {
                    path: PathBuf::from(LINK_UNIT),
                    contents: link_unit(),
                    mode: 0o644,
                    user_owned: false,
                },
                Action::Run { argv: argv(&["systemctl", "daemon-reload"]), undo: None },
                Action::Run {
                    argv: argv(&["systemctl", "enable", "--now", "devingress-link.service"]),
                    undo: Some(argv(&["systemctl", "disable", "--now", "devingress-link.service"])),
                },
            ],
            per_user: false,
        });
        steps.push(Step {
            title: format!("let {} set DNS on {LINK} without a password", user.name),
            why: format!(
                "`devingress up` runs as you and calls `resolvectl dns/domain/revert {LINK}` whenever the served \
                 hosts change; without this polkit rule each call would ask for a password"
            ),
            actions: vec![Action::WriteFile {
                path: PathBuf::from(POLKIT_RULE),
                contents: polkit_rule(&user.name, RESOLVED_ACTIONS, "change systemd-resolved's per-link DNS settings"),
                mode: 0o644,
                user_owned: false,
            }],
            per_user: true,
        });
    } else if nm_dnsmasq {
        let servers = format!("{STATE_DIR}/dnsmasq-servers");
        steps.push(Step {
            title: "send served names from NetworkManager's dnsmasq to devingress".into(),
            why: format!(
                "dnsmasq reads the servers for devingress's domains from {servers}, a file in a directory you own, \
                 so that `devingress up` can rewrite it without root"
            ),
            actions: vec![
                Action::OnUndo { argv: argv(&["nmcli", "general", "reload", "dns-full"]) },
                Action::UserDir { path: PathBuf::from(STATE_DIR) },
                Action::WriteFile {
                    path: PathBuf::from(&servers),
                    contents: crate::resolver::dnsmasq::render(&[], 0),
                    mode: 0o644,
                    user_owned: true,
                },
                Action::WriteFile {
                    path: PathBuf::from(DNSMASQ_DROPIN),
                    contents: format!("# {MARKER}\nservers-file={servers}\n"),
                    mode: 0o644,
                    user_owned: false,
                },
                Action::Run { argv: argv(&["nmcli", "general", "reload", "dns-full"]), undo: None },
            ],
            per_user: true,
        });
        steps.push(Step {
            title: format!("let {} reload NetworkManager's DNS without a password", user.name),
            why:
                "dnsmasq reads its servers at start; `devingress up` restarts it with `nmcli general reload dns-full` \
                  when the served hosts change"
                    .into(),
            actions: vec![Action::WriteFile {
                path: PathBuf::from(POLKIT_RULE),
                contents: polkit_rule(&user.name, &["org.freedesktop.NetworkManager.reload"], "reload NetworkManager"),
                mode: 0o644,
                user_owned: false,
            }],
            per_user: true,
        });
    } else {
        steps.push(Step {
            title: "nothing for DNS: no per-domain resolver here".into(),
            why: "neither systemd-resolved nor NetworkManager's dnsmasq runs; `sudo devingress up --hosts-file \
                  /etc/hosts` lists the exact served hosts in /etc/hosts instead (not wildcards)"
                .into(),
            actions: vec![],
            per_user: false,
        });
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> User {
        User { name: "alice".into(), ids: Some((1000, 1000)) }
    }

    #[test]
    fn resolved_plan_adds_the_link_and_a_narrow_polkit_rule() {
        let steps = plan(&alice(), Path::new("/home/alice/.cargo/bin/devingress"), true, false);
        let text = super::super::explain(&steps);
        assert!(text.starts_with("1. let /home/alice/.cargo/bin/devingress bind ports 80 and 443\n   why: "), "{text}");
        assert!(text.contains("run: setcap cap_net_bind_service=+ep /home/alice/.cargo/bin/devingress"), "{text}");
        assert!(text.contains("write /etc/systemd/system/devingress-link.service (mode 644, owned by root)"));
        assert!(text.contains("run: systemctl enable --now devingress-link.service"));
        assert!(text.contains("3. let alice set DNS on devingress0 without a password"));
        let unit = link_unit();
        assert!(unit.contains("ExecStart=-ip link add devingress0 type dummy") && unit.contains("198.18.53.53/32"));
        let rule = polkit_rule("alice", RESOLVED_ACTIONS, "x");
        assert!(rule.contains("subject.user == \"alice\"") && rule.contains("\"org.freedesktop.resolve1.revert\""));
        assert!(!rule.contains("set-llmnr\", \"org.freedesktop.resolve1.set-dns-servers"), "no duplicates");
    }

    #[test]
    fn dnsmasq_plan_gives_the_user_the_servers_file_only() {
        let steps = plan(&alice(), Path::new("/usr/bin/devingress"), false, true);
        let writes: Vec<(&PathBuf, bool)> = steps
            .iter()
            .flat_map(|s| &s.actions)
            .filter_map(|a| match a {
                Action::WriteFile { path, user_owned, .. } => Some((path, *user_owned)),
                _ => None,
            })
            .collect();
        assert_eq!(
            writes,
            [
                (&PathBuf::from("/var/lib/devingress/dnsmasq-servers"), true),
                (&PathBuf::from(DNSMASQ_DROPIN), false),
                (&PathBuf::from(POLKIT_RULE), false),
            ]
        );
    }

    #[test]
    fn without_a_per_domain_resolver_only_the_ports_change() {
        let steps = plan(&alice(), Path::new("/usr/bin/devingress"), false, false);
        assert_eq!(steps.iter().filter(|s| !s.actions.is_empty()).count(), 1);
        assert!(steps[1].why.contains("--hosts-file /etc/hosts"));
    }
}
