//! The programs perflab uses: one table that `perflab doctor` checks and the fingerprint
//! records (path, version, sha256) on every lab host.
//!
//! # Why
//!
//! Which programs matter, how each prints its version and how to install it was written twice
//! (doctor's requirements and the fingerprint's tool list) and could drift apart: a tool
//! checked but not recorded, or recorded with other version arguments.

/// One program perflab may use.
#[derive(Debug, Clone)]
pub struct Tool {
    /// Program name (looked up on PATH).
    pub program: &'static str,
    /// Arguments that print its version.
    pub version_args: &'static [&'static str],
    /// Which driver or feature needs it (doctor's first column).
    pub needed_by: &'static str,
    /// Required by the local driver (doctor fails without it) or only by some cases.
    pub required: bool,
    /// How to install it on Debian/Ubuntu.
    pub install: &'static str,
    /// The nixpkgs attribute that provides it (as the flake's `nix/` uses them); `None` where
    /// nixpkgs does not package it the way perflab needs (Kong).
    pub nix_package: Option<&'static str>,
    /// Recorded in the fingerprint of every lab host (the programs a run executes there);
    /// terraform, which runs on the controller, is recorded there by the fingerprint.
    pub on_lab_hosts: bool,
}

/// Every program perflab may use, in the order `perflab doctor` lists them.
pub const TOOLS: &[Tool] = &[
    Tool {
        program: "wrk",
        version_args: &["-v"],
        needed_by: "local",
        required: true,
        install: "apt-get install wrk",
        nix_package: Some("wrk"),
        on_lab_hosts: true,
    },
    Tool {
        program: "nginx",
        version_args: &["-v"],
        needed_by: "local",
        required: true,
        install: "apt-get install nginx-light",
        nix_package: Some("nginx"),
        on_lab_hosts: true,
    },
    Tool {
        program: "taskset",
        version_args: &["--version"],
        needed_by: "local",
        required: false,
        install: "apt-get install util-linux (CPU pinning)",
        nix_package: Some("util-linux"),
        on_lab_hosts: true,
    },
    Tool {
        program: "haproxy",
        version_args: &["-v"],
        needed_by: "haproxy cases",
        required: false,
        install: "apt-get install haproxy",
        nix_package: Some("haproxy"),
        on_lab_hosts: true,
    },
    Tool {
        program: "perf",
        version_args: &["--version"],
        needed_by: "flame graphs",
        required: false,
        install: "apt-get install linux-perf",
        nix_package: Some("linuxPackages.perf"),
        on_lab_hosts: true,
    },
    Tool {
        program: "kong",
        version_args: &["version"],
        needed_by: "kong",
        required: false,
        install: "see docs/kong.md (Kong's own packages), or PERFLAB_KONG_PREFIX=<a Kong built from source> (docs/kong-from-source.md)",
        nix_package: None,
        on_lab_hosts: true,
    },
    Tool {
        program: "pg_ctl",
        version_args: &["--version"],
        needed_by: "kong (PostgreSQL)",
        required: false,
        install: "apt-get install postgresql",
        nix_package: Some("postgresql"),
        on_lab_hosts: true,
    },
    Tool {
        program: "pg_dump",
        version_args: &["--version"],
        needed_by: "kong (pgdump)",
        required: false,
        install: "apt-get install postgresql-client",
        nix_package: Some("postgresql"),
        on_lab_hosts: false,
    },
    Tool {
        program: "dockerd",
        version_args: &["--version"],
        needed_by: "docker",
        required: false,
        install: "apt-get install docker.io, then scripts/start-dockerd.sh",
        nix_package: Some("docker"),
        on_lab_hosts: false,
    },
    Tool {
        program: "terraform",
        version_args: &["version"],
        needed_by: "terraform",
        required: false,
        install: "HashiCorp's terraform (or OpenTofu as `terraform`)",
        nix_package: Some("opentofu"),
        on_lab_hosts: false,
    },
    Tool {
        program: "ssh",
        version_args: &["-V"],
        needed_by: "terraform",
        required: false,
        install: "apt-get install openssh-client",
        nix_package: Some("openssh"),
        on_lab_hosts: false,
    },
    Tool {
        program: "sshd",
        version_args: &["-V"],
        needed_by: "terraform netns",
        required: false,
        install: "apt-get install openssh-server",
        nix_package: Some("openssh"),
        on_lab_hosts: false,
    },
    Tool {
        program: "ip",
        version_args: &["-V"],
        needed_by: "terraform netns",
        required: false,
        install: "apt-get install iproute2",
        nix_package: Some("iproute2"),
        on_lab_hosts: false,
    },
    Tool {
        program: "git",
        version_args: &["--version"],
        needed_by: "git: versions",
        required: false,
        install: "apt-get install git (only for your own use; perflab uses libgit2)",
        nix_package: Some("git"),
        on_lab_hosts: false,
    },
];

/// The tool of a program name.
pub fn tool(program: &str) -> Option<&'static Tool> {
    TOOLS.iter().find(|t| t.program == program)
}

/// The tools recorded on every lab host.
pub fn on_lab_hosts() -> impl Iterator<Item = &'static Tool> {
    TOOLS.iter().filter(|t| t.on_lab_hosts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tool_but_kong_has_a_nix_package_and_names_are_unique() {
        for t in TOOLS {
            assert_eq!(
                t.nix_package.is_none(),
                t.program == "kong",
                "{}",
                t.program
            );
            let same = TOOLS.iter().filter(|x| x.program == t.program).count();
            assert_eq!(same, 1, "{} listed {same} times", t.program);
            assert_eq!(tool(t.program).unwrap().program, t.program);
        }
        let hosts: Vec<&str> = on_lab_hosts().map(|t| t.program).collect();
        assert_eq!(
            hosts,
            [
                "wrk", "nginx", "taskset", "haproxy", "perf", "kong", "pg_ctl"
            ]
        );
    }
}
