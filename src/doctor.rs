//! `perflab doctor`: what each driver needs, what was found (path and version), what is
//! missing and how to install it — plus the environment fingerprint of this machine. The
//! programs and their install hints are [`crate::tools::TOOLS`], the table the fingerprint
//! records too.

use std::time::Duration;

use crate::host::{Cmd, Host, LocalHost};

/// Whether perflab runs in a Nix shell or from the Nix store, where packages come from nixpkgs
/// rather than apt.
pub fn running_under_nix() -> bool {
    std::env::var_os("IN_NIX_SHELL").is_some()
        || std::env::current_exe().is_ok_and(|p| p.starts_with("/nix/store"))
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
    for r in crate::tools::TOOLS {
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
                let install = match r.nix_package.filter(|_| under_nix) {
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
    match crate::fingerprint::local() {
        Some(fp) => out.push_str(&crate::fingerprint::compact(&fp)),
        None => out.push_str("  (this machine could not be inspected)\n"),
    }
    (out, ok)
}
