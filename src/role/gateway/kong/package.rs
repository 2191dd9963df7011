//! Installing a Kong release from Kong's distribution packages on a provisioned Ubuntu host.
//!
//! Kong's framework installed the `.deb` of the asked-for release on its terraform machines
//! (reference §5.5). perflab does the same on the terraform driver's cloud and bring-your-own
//! hosts when `kong` is missing or reports another version: it downloads the package for the
//! host's Ubuntu release and architecture from Kong's package repository (one repository per
//! minor line, `gateway-<major><minor>`), keeps it in `/var/cache/perflab` (a valid cached
//! package is not downloaded again) and installs it with `apt-get`, which pulls its
//! dependencies. Hosts perflab did not provision (local, the `netns` namespaces of this
//! machine, containers) are never changed: there a missing release is an error.

use crate::{Error, Result};

/// Kong's public package repository.
pub const PACKAGE_BASE: &str = "https://packages.konghq.com/public";

/// The repository of a release's minor line: `3.9.1` → `gateway-39`.
pub fn repository(release: &str) -> Result<String> {
    let mut parts = release.split(['.', '-']);
    let major = parts.next().and_then(|p| p.parse::<u32>().ok());
    let minor = parts.next().and_then(|p| p.parse::<u32>().ok());
    match (major, minor) {
        (Some(major @ 2..), Some(minor)) => Ok(format!("gateway-{major}{minor}")),
        _ => Err(Error::Usage(format!(
            "kong {release}: no distribution package is known for it (packages exist for 2.x \
             and later releases, written like 3.9.1)"
        ))),
    }
}

/// The URL of a release's `.deb` for an Ubuntu codename (`jammy`) and Debian architecture
/// (`amd64`, `arm64`).
pub fn deb_url(release: &str, codename: &str, arch: &str) -> Result<String> {
    let repo = repository(release)?;
    Ok(format!(
        "{PACKAGE_BASE}/{repo}/deb/ubuntu/pool/{codename}/main/k/ko/kong_{release}/kong_{release}_{arch}.deb"
    ))
}

/// A POSIX shell script that installs `release` on an Ubuntu host: it reads the codename and
/// architecture there, downloads the package unless a valid copy is cached, and installs it.
/// Runs as root or through `sudo -n`. Exits 3 on a host that is not Ubuntu.
pub fn install_script(release: &str) -> Result<String> {
    let repo = repository(release)?;
    Ok(format!(
        r#"set -eu
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo -n"
. /etc/os-release
if [ "${{ID:-}}" != ubuntu ]; then
    echo "Kong's packages are installed on Ubuntu hosts only; this host runs ${{ID:-an unknown system}}" >&2
    exit 3
fi
arch=$(dpkg --print-architecture)
deb=/var/cache/perflab/kong_{release}_$arch.deb
url="{PACKAGE_BASE}/{repo}/deb/ubuntu/pool/$VERSION_CODENAME/main/k/ko/kong_{release}/kong_{release}_$arch.deb"
$SUDO mkdir -p /var/cache/perflab
if ! dpkg-deb -I "$deb" >/dev/null 2>&1; then
    echo "downloading $url"
    $SUDO curl -fsSL --retry 3 -o "$deb.part" "$url"
    $SUDO mv "$deb.part" "$deb"
fi
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$deb"
"#
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repositories_and_urls() {
        assert_eq!(repository("3.9.1").unwrap(), "gateway-39");
        assert_eq!(repository("2.8.4").unwrap(), "gateway-28");
        assert_eq!(repository("3.10.0-rc.1").unwrap(), "gateway-310");
        assert!(repository("1.5.0").is_err());
        assert!(repository("main").is_err());
        assert_eq!(
            deb_url("3.9.1", "jammy", "amd64").unwrap(),
            "https://packages.konghq.com/public/gateway-39/deb/ubuntu/pool/jammy/main/k/ko/kong_3.9.1/kong_3.9.1_amd64.deb"
        );
    }

    #[test]
    fn the_script_is_valid_shell_and_names_the_release() {
        let s = install_script("3.9.1").unwrap();
        assert!(
            s.contains("gateway-39") && s.contains("kong_3.9.1_$arch.deb"),
            "{s}"
        );
        // The script parses (sh -n) without running anything.
        let out = std::process::Command::new("sh")
            .args(["-n", "-c", &s])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
