//! Lab images without a registry: a root filesystem made of this machine's own binaries.
//!
//! The docker driver needs an image that holds nginx, wrk, curl, a shell and a few coreutils, but
//! no registry is reachable where perflab runs, so nothing can be pulled. Instead `perflab image
//! build` collects the binaries from this machine's PATH together with their shared-library
//! closure (from `ldd`, dynamic loader and symlinks included), adds the handful of files the
//! programs need (`/etc/passwd`, `/etc/group`, `/tmp`, nginx's `mime.types`), and imports the
//! tarball as an image (`docker import`). The same binaries then run in the containers as on the
//! local driver, which keeps results of the two drivers comparable.
//!
//! The tarball is deterministic (sorted entries, zero times and owners), so its SHA-256 names the
//! image: `perflab/lab:<hash>`. A rebuild from identical binaries finds the image already there
//! and reuses it. The newest build is also tagged `perflab/lab:latest`, the docker driver's
//! default. An image built elsewhere (e.g. `nix build` of a `dockerTools` image) is loaded with
//! [`image_load`] (`docker load`).
//!
//! Two concepts, one file each: [`rootfs`] assembles the tarball from this machine's files
//! (no engine involved); this module does the engine operations (inspect, pull, import, load,
//! tag) through [`crate::engine`].

pub mod rootfs;

pub use rootfs::{
    BinaryInfo, POSTGRES_PROGRAMS, REQUIRED_BINARIES, ROLE_BINARIES, Rootfs, build_rootfs_tar,
    default_binaries, parse_ldd, postgres_bin_dir,
};

use std::collections::BTreeMap;
use std::path::Path;

use bollard::Docker;
use bollard::query_parameters::{
    CreateImageOptionsBuilder, ImportImageOptionsBuilder, TagImageOptionsBuilder,
};
use futures_util::TryStreamExt;
use serde::Serialize;

use crate::engine::{connect, docker_error, runtime};
use crate::{Error, Result};

/// The repository of lab images.
pub const IMAGE_REPO: &str = "perflab/lab";

/// The tag the newest build or load gets, and the docker driver's default image.
pub const DEFAULT_IMAGE: &str = "perflab/lab:latest";

/// An image the lab can use.
#[derive(Debug, Clone, Serialize)]
pub struct ImageInfo {
    /// The engine's image id (`sha256:…`).
    pub id: String,
    /// The content-addressed tag (`perflab/lab:<hash>`), or the loaded image's own tag.
    pub tag: String,
    /// True when an image with this content already existed and was reused.
    pub reused: bool,
    /// The binaries in it (empty for loaded images, whose content perflab did not choose).
    pub binaries: Vec<BinaryInfo>,
}

/// True when the engine has an image by this name; its id.
pub async fn image_id(docker: &Docker, name: &str) -> Result<Option<String>> {
    match docker.inspect_image(name).await {
        Ok(i) => Ok(i.id),
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(None),
        Err(e) => Err(docker_error(&format!("inspecting image {name}"), e).into()),
    }
}

/// When the docker driver pulls an image from its registry (driver option `pull`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullPolicy {
    /// Pull only images the engine does not have (the default, like `docker run`).
    Missing,
    /// Pull every image named by reference before use (tags that move).
    Always,
    /// Never pull: every image must already be in the engine.
    Never,
}

impl std::str::FromStr for PullPolicy {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "missing" => Ok(PullPolicy::Missing),
            "always" => Ok(PullPolicy::Always),
            "never" => Ok(PullPolicy::Never),
            other => Err(Error::Usage(format!(
                "docker driver option pull={other}: expected missing, always or never"
            ))),
        }
    }
}

/// Pulls `reference` (`repo[:tag]`, `registry:port/repo:tag`, `repo@sha256:…`) from its registry
/// and returns the image id. Registry messages are logged at debug level as they arrive.
pub async fn pull_image(docker: &Docker, reference: &str) -> Result<String> {
    let opts = match reference.split_once('@') {
        Some(_) => CreateImageOptionsBuilder::default()
            .from_image(reference)
            .build(),
        None => {
            let (repo, tag) = split_repo_tag(reference);
            CreateImageOptionsBuilder::default()
                .from_image(repo)
                .tag(tag)
                .build()
        }
    };
    tracing::info!("pulling image {reference}");
    let mut stream = docker.create_image(Some(opts), None, None);
    while let Some(info) = stream
        .try_next()
        .await
        .map_err(|e| docker_error(&format!("pulling image {reference}"), e))?
    {
        if let Some(message) = info.error_detail.and_then(|d| d.message) {
            return Err(Error::Lab(format!("pulling image {reference}: {message}")));
        }
        if let Some(status) = info.status {
            tracing::debug!("pull {reference}: {status}");
        }
    }
    image_id(docker, reference).await?.ok_or_else(|| {
        Error::Lab(format!(
            "the engine reported {reference} pulled but has no such image"
        ))
    })
}

/// The id of image `reference`, pulled first as `policy` (or `always_pull`) says. A missing
/// image that cannot be pulled is a [`Error::MissingTool`] that names the engine, what was
/// tried and how to get the image there.
pub async fn ensure_image(
    docker: &Docker,
    engine: &str,
    reference: &str,
    policy: PullPolicy,
    always_pull: bool,
) -> Result<String> {
    let present = image_id(docker, reference).await?;
    let pull = match policy {
        PullPolicy::Never => false,
        PullPolicy::Always => true,
        PullPolicy::Missing => always_pull || present.is_none(),
    };
    if !pull {
        return present.ok_or_else(|| Error::MissingTool {
            program: format!("Docker image {reference}"),
            where_: format!(" in the engine at {engine} (driver option pull=never)"),
            hint: "load it (`perflab image load FILE`, `docker load`) or allow pulling with \
                   --driver-opt pull=missing"
                .into(),
        });
    }
    match pull_image(docker, reference).await {
        Ok(id) => Ok(id),
        // A moving tag that cannot be refreshed: the copy the engine has still runs.
        Err(e) if present.is_some() => {
            tracing::warn!("could not refresh image {reference} ({e}); using the engine's copy");
            Ok(present.unwrap_or_default())
        }
        Err(e) => Err(Error::MissingTool {
            program: format!("Docker image {reference}"),
            where_: format!(" in the engine at {engine}, and pulling it failed: {e}"),
            hint: "check the reference, make its registry reachable from the engine, or load \
                   the image (`perflab image load FILE`, `docker load`) and run with \
                   --driver-opt pull=never"
                .into(),
        }),
    }
}

fn split_repo_tag(repo_tag: &str) -> (&str, &str) {
    match repo_tag.rsplit_once(':') {
        Some((r, t)) if !t.contains('/') => (r, t),
        _ => (repo_tag, "latest"),
    }
}

/// Imports a root filesystem tarball as image `repo_tag` (`docker import`), with labels;
/// returns the image id.
pub async fn import_image(
    docker: &Docker,
    tar: Vec<u8>,
    repo_tag: &str,
    labels: &BTreeMap<String, String>,
) -> Result<String> {
    let (repo, tag) = split_repo_tag(repo_tag);
    let mut changes: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("LABEL {}={}", json_word(k), json_word(v)))
        .collect();
    changes
        .push("ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string());
    let opts = CreateImageOptionsBuilder::default()
        .from_src("-")
        .repo(repo)
        .tag(tag)
        .changes(changes)
        .build();
    docker
        .create_image(Some(opts), Some(bollard::body_full(tar.into())), None)
        .try_collect::<Vec<_>>()
        .await
        .map_err(|e| docker_error(&format!("importing image {repo_tag}"), e))?;
    image_id(docker, repo_tag).await?.ok_or_else(|| {
        Error::Lab(format!(
            "the engine accepted the import of {repo_tag} but has no such image"
        ))
    })
}

/// A label word for a Dockerfile instruction: JSON string quoting is accepted there.
fn json_word(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("\"{s}\""))
}

/// Loads a `docker save`-format tarball (`docker load`, e.g. a nix `dockerTools` image);
/// returns the names (or ids) of the images it held.
pub async fn load_image_tarball(docker: &Docker, data: Vec<u8>) -> Result<Vec<String>> {
    let infos = docker
        .import_image(
            ImportImageOptionsBuilder::default().build(),
            bollard::body_full(data.into()),
            None,
        )
        .try_collect::<Vec<_>>()
        .await
        .map_err(|e| docker_error("loading an image tarball", e))?;
    let mut names = Vec::new();
    for i in infos {
        if let Some(err) = i.error_detail.and_then(|d| d.message) {
            return Err(Error::Lab(format!("loading an image tarball: {err}")));
        }
        let Some(s) = i.stream else { continue };
        for line in s.lines() {
            if let Some(n) = line.strip_prefix("Loaded image: ") {
                names.push(n.trim().to_string());
            } else if let Some(n) = line.strip_prefix("Loaded image ID: ") {
                names.push(n.trim().to_string());
            }
        }
    }
    Ok(names)
}

/// Tags `image` as `repo_tag`.
pub async fn tag_image(docker: &Docker, image: &str, repo_tag: &str) -> Result<()> {
    let (repo, tag) = split_repo_tag(repo_tag);
    docker
        .tag_image(
            image,
            Some(
                TagImageOptionsBuilder::default()
                    .repo(repo)
                    .tag(tag)
                    .build(),
            ),
        )
        .await
        .map_err(|e| docker_error(&format!("tagging {image} as {repo_tag}"), e).into())
}

/// Builds the lab image from `binaries` (see [`build_rootfs_tar`]) unless an image with the same
/// content exists, and tags it `perflab/lab:latest`.
pub async fn build_image(docker: &Docker, binaries: &[&str]) -> Result<ImageInfo> {
    let rootfs = build_rootfs_tar(binaries)?;
    let tag = rootfs.tag();
    let (id, reused) = match image_id(docker, &tag).await? {
        Some(id) => (id, true),
        None => {
            let mut labels = BTreeMap::new();
            labels.insert("perflab.image".to_string(), "lab".to_string());
            labels.insert(
                "perflab.binaries".to_string(),
                rootfs
                    .binaries
                    .iter()
                    .map(|b| b.name.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
            );
            labels.insert("perflab.rootfs.sha256".to_string(), rootfs.sha256.clone());
            (
                import_image(docker, rootfs.tar.clone(), &tag, &labels).await?,
                false,
            )
        }
    };
    tag_image(docker, &id, DEFAULT_IMAGE).await?;
    Ok(ImageInfo {
        id,
        tag,
        reused,
        binaries: rootfs.binaries,
    })
}

/// `perflab image build`: builds (or reuses) the lab image from this machine's binaries in the
/// engine at `docker_host` (default: `DOCKER_HOST`, else `unix:///var/run/docker.sock`).
pub fn image_build(docker_host: Option<&str>) -> Result<ImageInfo> {
    let binaries = default_binaries()?;
    let names: Vec<&str> = binaries.iter().map(String::as_str).collect();
    image_build_with(docker_host, &names)
}

/// Like [`image_build`] with an explicit list of binaries.
pub fn image_build_with(docker_host: Option<&str>, binaries: &[&str]) -> Result<ImageInfo> {
    runtime().block_on(async {
        let docker = connect(docker_host).await?;
        build_image(&docker, binaries).await
    })
}

/// `perflab image load FILE`: loads a `docker save`-format tarball (e.g. the result of
/// `nix build .#image`) and tags its first image `perflab/lab:latest`, making it the docker
/// driver's default.
pub fn image_load(docker_host: Option<&str>, path: &Path) -> Result<ImageInfo> {
    let data = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    runtime().block_on(async {
        let docker = connect(docker_host).await?;
        let names = load_image_tarball(&docker, data).await?;
        let first = names.first().ok_or_else(|| {
            Error::Lab(format!(
                "{}: the engine loaded no image from it (is it a `docker save` tarball?)",
                path.display()
            ))
        })?;
        let id = image_id(&docker, first)
            .await?
            .ok_or_else(|| Error::Lab(format!("loaded {first} but the engine does not know it")))?;
        tag_image(&docker, &id, DEFAULT_IMAGE).await?;
        Ok(ImageInfo {
            id,
            tag: first.clone(),
            reused: false,
            binaries: Vec::new(),
        })
    })
}
