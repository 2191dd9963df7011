//! `perflab doctor`: what each driver needs, what was found (path and version), what is
//! missing and how to install it — plus the environment fingerprint of this machine.

use std::time::Duration;

use crate::host::{Cmd, Host, LocalHost};

/// One requirement.
#[derive(Debug, Clone)]
pub struct Requirement {
    /// Which driver or feature needs it.
    pub needed_by: &'static str,
    /// Program name.
    pub program: &'static str,
    /// Arguments that print its version.
    pub version_args: &'static [&'static str],
    /// Required (true) or only for some cases (false).
    pub required: bool,
    /// How to install it on Debian/Ubuntu.
    pub install: &'static str,
}

/// Everything perflab may use.
pub const REQUIREMENTS: &[Requirement] = &[
    Requirement {
        needed_by: "local",
        program: "wrk",
        version_args: &["-v"],
        required: true,
        install: "apt-get install wrk",
    },
    Requirement {
        needed_by: "local",
        program: "nginx",
        version_args: &["-v"],
        required: true,
        install: "apt-get install nginx-light",
    },
    Requirement {
        needed_by: "local",
        program: "taskset",
        version_args: &["--version"],
        required: false,
        install: "apt-get install util-linux (CPU pinning)",
    },
    Requirement {
        needed_by: "haproxy cases",
        program: "haproxy",
        version_args: &["-v"],
        required: false,
        install: "apt-get install haproxy",
    },
    Requirement {
        needed_by: "flame graphs",
        program: "perf",
        version_args: &["--version"],
        required: false,
        install: "apt-get install linux-perf",
    },
    Requirement {
        needed_by: "kong",
        program: "kong",
        version_args: &["version"],
        required: false,
        install: "see docs/kong.md (Kong's own packages), or PERFLAB_KONG_PREFIX=<a Kong built from source> (docs/kong-from-source.md)",
    },
    Requirement {
        needed_by: "kong (PostgreSQL)",
        program: "pg_ctl",
        version_args: &["--version"],
        required: false,
        install: "apt-get install postgresql",
    },
    Requirement {
        needed_by: "kong (pgdump)",
        program: "pg_dump",
        version_args: &["--version"],
        required: false,
        install: "apt-get install postgresql-client",
    },
    Requirement {
        needed_by: "docker",
        program: "dockerd",
        version_args: &["--version"],
        required: false,
        install: "apt-get install docker.io, then scripts/start-dockerd.sh",
    },
    Requirement {
        needed_by: "terraform",
        program: "terraform",
        version_args: &["version"],
        required: false,
        install: "HashiCorp's terraform (or OpenTofu as `terraform`)",
    },
    Requirement {
        needed_by: "terraform",
        program: "ssh",
        version_args: &["-V"],
        required: false,
        install: "apt-get install openssh-client",
    },
    Requirement {
        needed_by: "terraform netns",
        program: "sshd",
        version_args: &["-V"],
        required: false,
        install: "apt-get install openssh-server",
    },
    Requirement {
        needed_by: "terraform netns",
        program: "ip",
        version_args: &["-V"],
        required: false,
        install: "apt-get install iproute2",
    },
    Requirement {
        needed_by: "git: versions",
        program: "git",
        version_args: &["--version"],
        required: false,
        install: "apt-get install git (only for your own use; perflab uses libgit2)",
    },
];

/// Whether perflab runs in a Nix shell or from the Nix store, where packages come from nixpkgs
/// rather than apt.
pub fn running_under_nix() -> bool {
    std::env::var_os("IN_NIX_SHELL").is_some()
        || std::env::current_exe().is_ok_and(|p| p.starts_with("/nix/store"))
}

/// The nixpkgs attribute that provides a program (as the flake's `nix/` uses them); `None` for
/// programs nixpkgs does not package the way perflab needs (Kong).
pub fn nix_package(program: &str) -> Option<&'static str> {
    Some(match program {
        "wrk" => "wrk",
        "nginx" => "nginx",
        "taskset" => "util-linux",
        "haproxy" => "haproxy",
        "perf" => "linuxPackages.perf",
        "pg_ctl" | "pg_dump" => "postgresql",
        "dockerd" => "docker",
        "terraform" => "opentofu",
        "ssh" | "sshd" => "openssh",
        "ip" => "iproute2",
        "git" => "git",
        _ => return None,
    })
}

/// Checks every requirement on the local machine; returns the report text and whether all
/// required programs were found.
pub fn check() -> (String, bool) {
    let host = match LocalHost::new("local", &std::env::temp_dir()) {
        Ok(h) => h,
        Err(e) => return (format!("cannot inspect this machine: {e}"), false),
    };
    let mut ok = true;
    let mut out = String::from("perflab doctor\n\n");
    out.push_str(&format!(
        "{:<18} {:<10} {:<8} {:<28} {}\n",
        "needed by", "program", "status", "path", "version / how to install"
    ));
    // A Kong built from source is found through PERFLAB_KONG_PREFIX, as the Kong adapter finds
    // it, and runs with the prefix's environment (its `resty` is not on PATH).
    let env: Vec<(String, String)> = std::env::vars().collect();
    let kong_prefix = crate::role::gateway::kong::prefix::KongPrefix::from_env(&env);
    let own_path = std::env::var("PATH").ok();
    let under_nix = running_under_nix();
    if under_nix {
        out.insert_str(
            "perflab doctor\n".len(),
            "(running under Nix: install hints name nixpkgs attributes)\n",
        );
    }
    for r in REQUIREMENTS {
        let prefixed = (r.program == "kong")
            .then_some(())
            .and(kong_prefix.as_ref());
        if let Some(p) = prefixed
            && !std::path::Path::new(&p.program()).is_file()
        {
            out.push_str(&format!(
                "{:<18} {:<10} {:<8} {:<28} install: PERFLAB_KONG_PREFIX={} has no bin/kong\n",
                r.needed_by,
                r.program,
                "missing",
                "-",
                p.root.display()
            ));
            continue;
        }
        let found = prefixed
            .map(|p| p.program())
            .or_else(|| host.which(r.program))
            .or_else(|| {
                // Debian keeps PostgreSQL's server programs off PATH, per major version.
                let postgres = crate::image::postgres_bin_dir();
                [Some("/usr/sbin".into()), Some("/sbin".into()), postgres]
                    .into_iter()
                    .flatten()
                    .map(|d: std::path::PathBuf| d.join(r.program).display().to_string())
                    .find(|p| std::path::Path::new(p).is_file())
            });
        match found {
            Some(path) => {
                let env = prefixed
                    .map(|p| p.env(own_path.as_deref()))
                    .unwrap_or_default();
                let cmd = env.into_iter().fold(
                    Cmd::new(&path)
                        .args(r.version_args.iter().copied())
                        .env("CHECKPOINT_DISABLE", "1"),
                    |c, (k, v)| c.env(k, v),
                );
                let version = host
                    .run(&cmd, Duration::from_secs(10))
                    .map(|o| {
                        o.combined_text()
                            .lines()
                            .next()
                            .unwrap_or("")
                            .trim()
                            .to_string()
                    })
                    .unwrap_or_default();
                out.push_str(&format!(
                    "{:<18} {:<10} {:<8} {:<28} {}\n",
                    r.needed_by, r.program, "ok", path, version
                ));
            }
            None => {
                if r.required {
                    ok = false;
                }
                let status = if r.required { "MISSING" } else { "missing" };
                let install = match nix_package(r.program).filter(|_| under_nix) {
                    Some(attr) => format!(
                        "nix develop (the flake's dev shells have it) or nix shell nixpkgs#{attr}"
                    ),
                    None => r.install.to_string(),
                };
                out.push_str(&format!(
                    "{:<18} {:<10} {:<8} {:<28} install: {}\n",
                    r.needed_by, r.program, status, "-", install
                ));
            }
        }
    }
    let paranoid =
        std::fs::read_to_string("/proc/sys/kernel/perf_event_paranoid").unwrap_or_default();
    out.push_str(&format!("\nkernel.perf_event_paranoid = {} (flame graphs need <= 2 for your own processes, or root)\n", paranoid.trim()));
    let docker =
        std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into());
    let sock = docker.strip_prefix("unix://").unwrap_or("");
    out.push_str(&format!(
        "docker engine: {} ({})\n",
        docker,
        if !sock.is_empty() && std::path::Path::new(sock).exists() {
            "socket present"
        } else {
            "no socket: start dockerd (scripts/start-dockerd.sh) or set DOCKER_HOST"
        }
    ));
    out.push_str(if ok {
        "\nlocal driver: ready\n"
    } else {
        "\nlocal driver: NOT ready (install what is MISSING above)\n"
    });
    out.push_str(
        "\nfingerprint of this machine (every manifest.json records it; docs/reproducibility.md):\n",
    );
    out.push_str(&crate::fingerprint::compact(&crate::fingerprint::local()));
    (out, ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_requirement_but_kong_has_a_nix_package() {
        for r in REQUIREMENTS {
            assert_eq!(
                nix_package(r.program).is_none(),
                r.program == "kong",
                "{}",
                r.program
            );
        }
    }
}
