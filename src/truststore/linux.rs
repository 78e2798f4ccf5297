//! The Linux system trust store: Debian's update-ca-certificates, Fedora's
//! update-ca-trust, or p11-kit's `trust anchor` (Arch), whichever the
//! distribution has.

use std::path::{Path, PathBuf};

use super::{Outcome, TrustError, TrustStore, have, run, store_name, under};
use crate::tls::LocalCa;

/// One of the layouts.
pub struct SystemStore {
    root: PathBuf,
    kind: Kind,
}

enum Kind {
    /// `/usr/local/share/ca-certificates/*.crt` + `update-ca-certificates`.
    Debian,
    /// `/etc/pki/ca-trust/source/anchors/*.pem` + `update-ca-trust`.
    Fedora,
    /// `trust anchor --store` / `--remove`.
    P11Kit,
}

/// The system store this machine has, if any.
pub fn system_stores(root: &Path) -> Vec<Box<dyn TrustStore>> {
    let kind = if under(root, "/usr/local/share/ca-certificates").is_dir() && have("update-ca-certificates") {
        Kind::Debian
    } else if under(root, "/etc/pki/ca-trust/source/anchors").is_dir() && have("update-ca-trust") {
        Kind::Fedora
    } else if have("trust") {
        Kind::P11Kit
    } else {
        return Vec::new();
    };
    vec![Box::new(SystemStore { root: root.to_path_buf(), kind })]
}

impl SystemStore {
    fn file(&self, ca: &LocalCa) -> PathBuf {
        match self.kind {
            Kind::Debian => {
                under(&self.root, "/usr/local/share/ca-certificates").join(format!("{}.crt", store_name(ca)))
            }
            Kind::Fedora | Kind::P11Kit => {
                under(&self.root, "/etc/pki/ca-trust/source/anchors").join(format!("{}.pem", store_name(ca)))
            }
        }
    }

    fn bundle(&self) -> PathBuf {
        match self.kind {
            Kind::Debian => under(&self.root, "/etc/ssl/certs/ca-certificates.crt"),
            Kind::Fedora => under(&self.root, "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem"),
            Kind::P11Kit => under(&self.root, "/etc/ca-certificates/extracted/tls-ca-bundle.pem"),
        }
    }

    /// The update command, pointed at the root when it is not `/`.
    fn update(&self) -> (String, Vec<String>) {
        match self.kind {
            Kind::Debian => {
                let mut args = Vec::new();
                if self.root != Path::new("/") {
                    for (flag, path) in [
                        ("--certsconf", "/etc/ca-certificates.conf"),
                        ("--certsdir", "/usr/share/ca-certificates"),
                        ("--localcertsdir", "/usr/local/share/ca-certificates"),
                        ("--etccertsdir", "/etc/ssl/certs"),
                        ("--hooksdir", "/etc/ca-certificates/update.d"),
                    ] {
                        args.push(flag.to_string());
                        args.push(under(&self.root, path).display().to_string());
                    }
                }
                ("update-ca-certificates".into(), args)
            }
            Kind::Fedora => ("update-ca-trust".into(), vec!["extract".into()]),
            Kind::P11Kit => ("trust".into(), vec!["extract-compat".into()]),
        }
    }

    fn run_update(&self, fresh: bool) -> Result<(), TrustError> {
        let (program, mut args) = self.update();
        if fresh && matches!(self.kind, Kind::Debian) {
            args.insert(0, "--fresh".into());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run(&program, &args).map(|_| ())
    }

    fn may_write(&self, dir: &Path) -> bool {
        let probe = dir.join(".devingress-write-test");
        let ok = std::fs::write(&probe, b"").is_ok();
        let _ = std::fs::remove_file(&probe);
        ok
    }
}

fn body(pem: &str) -> String {
    pem.lines().filter(|l| !l.starts_with("-----")).collect()
}

impl TrustStore for SystemStore {
    fn name(&self) -> String {
        let tool = match self.kind {
            Kind::Debian => "update-ca-certificates",
            Kind::Fedora => "update-ca-trust",
            Kind::P11Kit => "p11-kit trust",
        };
        format!("system trust store ({tool})")
    }

    fn contains(&self, ca: &LocalCa, _ca_path: &Path) -> bool {
        let want = body(&ca.cert_pem);
        std::fs::read_to_string(self.bundle()).is_ok_and(|b| body(&b).contains(&want))
    }

    fn install(&self, ca: &LocalCa, ca_path: &Path) -> Result<Outcome, TrustError> {
        let file = self.file(ca);
        if self.contains(ca, ca_path) && (file.exists() || matches!(self.kind, Kind::P11Kit)) {
            return Ok(Outcome::Unchanged(format!("{} already trusts it", self.name())));
        }
        if let Kind::P11Kit = self.kind {
            let path = ca_path.display().to_string();
            return match run("trust", &["anchor", "--store", &path]) {
                Ok(_) => Ok(Outcome::Changed(format!("added it with `trust anchor --store {path}`"))),
                Err(_) => Ok(Outcome::RunYourself(format!("sudo trust anchor --store {path}"))),
            };
        }
        let dir = file.parent().expect("store file has a parent");
        if !self.may_write(dir) {
            let (program, args) = self.update();
            return Ok(Outcome::RunYourself(format!(
                "sudo install -m 644 {} {} && sudo {program} {}",
                ca_path.display(),
                file.display(),
                args.join(" ")
            )));
        }
        crate::paths::write_atomic(&file, ca.cert_pem.as_bytes(), false).map_err(|source| TrustError::Io {
            action: "cannot write",
            path: file.display().to_string(),
            source,
        })?;
        self.run_update(false)?;
        let (program, _) = self.update();
        Ok(Outcome::Changed(format!(
            "wrote {} and ran {program}, which added it to {}",
            file.display(),
            self.bundle().display()
        )))
    }

    fn uninstall(&self, ca: &LocalCa, ca_path: &Path) -> Result<Outcome, TrustError> {
        if let Kind::P11Kit = self.kind {
            let path = ca_path.display().to_string();
            if !self.contains(ca, ca_path) {
                return Ok(Outcome::Unchanged(format!("{} does not hold it", self.name())));
            }
            return match run("trust", &["anchor", "--remove", &path]) {
                Ok(_) => Ok(Outcome::Changed(format!("removed it with `trust anchor --remove {path}`"))),
                Err(_) => Ok(Outcome::RunYourself(format!("sudo trust anchor --remove {path}"))),
            };
        }
        let file = self.file(ca);
        if !file.exists() {
            return Ok(Outcome::Unchanged(format!("{} does not hold {}", self.name(), file.display())));
        }
        let dir = file.parent().expect("store file has a parent");
        if !self.may_write(dir) {
            let (program, args) = self.update();
            let fresh = if matches!(self.kind, Kind::Debian) { " --fresh" } else { "" };
            return Ok(Outcome::RunYourself(format!(
                "sudo rm {} && sudo {program}{fresh} {}",
                file.display(),
                args.join(" ")
            )));
        }
        std::fs::remove_file(&file).map_err(|source| TrustError::Io {
            action: "cannot remove",
            path: file.display().to_string(),
            source,
        })?;
        // Debian keeps the certificate's links until a fresh run clears them.
        self.run_update(true)?;
        let (program, _) = self.update();
        Ok(Outcome::Changed(format!("removed {} and ran {program}", file.display())))
    }
}
