//! The set-up on macOS: permission to add and remove files in
//! /etc/resolver. Ports 80 and 443 need no privilege there (since macOS
//! 10.14, any user may bind them).

use super::{Action, Step, User};

/// The access-control entry that lets `user` add and remove files.
pub fn acl(user: &str) -> String {
    format!("{user} allow add_file,delete_child")
}

/// The macOS plan.
pub fn plan(user: &User) -> Vec<Step> {
    vec![
        Step {
            title: "nothing for ports 80 and 443".into(),
            why: "macOS lets any user listen on them".into(),
            actions: vec![],
            per_user: false,
        },
        Step {
            title: format!("let {} add and remove files in /etc/resolver", user.name),
            why: "`devingress up` writes one file per served domain there (nameserver 127.0.0.1, port N), which \
                  sends that domain to its DNS server, and removes the files when it stops"
                .into(),
            actions: vec![
                Action::Run { argv: vec!["mkdir".into(), "-p".into(), "/etc/resolver".into()], undo: None },
                Action::Run {
                    argv: vec!["chmod".into(), "+a".into(), acl(&user.name), "/etc/resolver".into()],
                    undo: Some(vec!["chmod".into(), "-a".into(), acl(&user.name), "/etc/resolver".into()]),
                },
            ],
            per_user: true,
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_acl_is_added_and_taken_back() {
        let steps = plan(&User { name: "bob".into(), ids: None });
        let text = super::super::explain(&steps);
        assert!(text.contains("run: chmod +a bob allow add_file,delete_child /etc/resolver"), "{text}");
        assert!(matches!(&steps[1].actions[1], Action::Run { undo: Some(u), .. } if u[1] == "-a"));
    }
}
