//! The flake's lab image (`nix build .#image-lab`, then `perflab image load result`) must hold
//! every program the docker driver runs in a container. The image's contents are listed in
//! nix/lib.nix (`imageRoles.lab` and each tool's `bins`); this test evaluates that list with
//! the real `nix-instantiate` (pure evaluation, no nixpkgs, no store) and checks it against
//! the driver's own lists in src/image/rootfs.rs, so a program added to the driver without adding it
//! to the image fails here rather than in a docker suite on someone's machine.

use std::process::Command;

#[test]
fn the_lab_image_has_every_program_the_docker_driver_runs() {
    let root = env!("CARGO_MANIFEST_DIR");
    let tmp = tempfile::tempdir().unwrap();
    let expr = "let l = import ./nix/lib.nix; tools = l.runtimeTools ++ l.imageOnlyTools; \
                in builtins.concatLists (map (n: (builtins.head \
                (builtins.filter (t: t.name == n) tools)).bins) l.imageRoles.lab)";
    let out = Command::new("nix-instantiate")
        .args([
            "--store", "dummy://", "--eval", "--strict", "--json", "-E", expr,
        ])
        .current_dir(root)
        .env("NIX_STATE_DIR", tmp.path().join("state"))
        .env("NIX_LOG_DIR", tmp.path().join("log"))
        .env("NIX_CONF_DIR", tmp.path())
        .env("HOME", tmp.path())
        .env_remove("NIX_PATH")
        .output()
        .expect("nix-instantiate runs (scripts/install-deps.sh installs nix-bin)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bins: Vec<String> = serde_json::from_slice(&out.stdout).unwrap();
    // Every image also gets /bin/sh (dockerTools.binSh) and /usr/bin/env (images.nix).
    let has = |p: &str| p == "sh" || bins.iter().any(|b| b == p);
    let missing: Vec<&str> = perflab::image::REQUIRED_BINARIES
        .iter()
        .chain(perflab::image::ROLE_BINARIES)
        .chain(perflab::image::POSTGRES_PROGRAMS)
        .copied()
        .filter(|p| !has(p))
        .collect();
    assert!(
        missing.is_empty(),
        "the lab image lacks {missing:?} (it has {bins:?})"
    );
}
