//! The docker driver: one long-lived container per role, commands run as Docker execs.
//!
//! Containers give each role its own filesystem and PID namespace (so `/proc` CPU accounting
//! sees just that role) while sharing the machine's network by default: bridge NAT costs 20%+
//! throughput in published measurements, so host networking is the honest default and a
//! lab-owned bridge network is opt-in. Containers are not pinned by default: the session pins
//! each role with `taskset` inside its container (measured server alone on the last CPU, the
//! rest on the others), exactly as on the local driver, so results of the two drivers compare.
//! A container-level CPU set would clash with that plan in baseline cases, where the upstream in
//! the worker container is the measured server; `cpuset.*` options are there for users who pin
//! the containers themselves (with `--no-pin`).
//!
//! Everything the driver creates carries the label `perflab.lab=<lab id>`, and teardown removes
//! by that label and by id (containers first, then networks, then volumes). Docker 20.10 allows
//! duplicate network names, so names are never used to find things again; a crashed lab's
//! leftovers are found by label ([`find_leftovers`]) and removed by `perflab teardown`
//! ([`remove_leftovers`]).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bollard::Docker;
use bollard::models::{ContainerCreateBody, HostConfig, NetworkCreateRequest};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, InspectContainerOptions, ListContainersOptionsBuilder,
    ListNetworksOptionsBuilder, ListVolumesOptionsBuilder, RemoveContainerOptionsBuilder,
    RemoveVolumeOptionsBuilder,
};
use serde::Serialize;

use super::{Driver, DriverOptions, GatewayImage, Role};
pub use crate::engine::{connect, docker_error, engine_address, runtime};
use crate::host::Host;
use crate::host::container::ContainerHost;
use crate::image::{DEFAULT_IMAGE, PullPolicy, ensure_image, image_id};
use crate::{Error, Result};

/// The label every Docker object of a lab carries; its value is the lab id.
pub const LAB_LABEL: &str = "perflab.lab";
/// The label naming the role of a container.
pub const ROLE_LABEL: &str = "perflab.role";
/// The label naming the instance of a role.
pub const INSTANCE_LABEL: &str = "perflab.instance";

/// The options the docker driver understands (`--driver-opt key=value`).
pub const OPTIONS: &[&str] = &[
    "image",
    "network",
    "pull",
    "cpuset.gateway",
    "cpuset.worker",
    "load_hosts",
];

/// How the lab's containers are networked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetworkMode {
    /// The machine's network namespace: services on 127.0.0.1, no NAT (default).
    Host,
    /// A bridge network the lab creates (internal: no route out), labelled with the lab id.
    Bridge,
}

/// A Docker object left by a lab.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Leftover {
    /// "container", "network" or "volume".
    pub kind: &'static str,
    /// The object's id (a volume's name).
    pub id: String,
    /// Its name.
    pub name: String,
    /// The lab id from its label.
    pub lab: String,
}

fn label_filter(lab_id: Option<&str>) -> HashMap<String, Vec<String>> {
    let v = match lab_id {
        Some(id) => format!("{LAB_LABEL}={id}"),
        None => LAB_LABEL.to_string(),
    };
    HashMap::from([("label".to_string(), vec![v])])
}

/// Every container, network and volume labelled `perflab.lab` (with value `lab_id` when given).
pub async fn find_leftovers_async(docker: &Docker, lab_id: Option<&str>) -> Result<Vec<Leftover>> {
    let filters = label_filter(lab_id);
    let mut out = Vec::new();
    let containers = docker
        .list_containers(Some(
            ListContainersOptionsBuilder::default()
                .all(true)
                .filters(&filters)
                .build(),
        ))
        .await
        .map_err(|e| docker_error("listing containers", e))?;
    for c in containers {
        let labels = c.labels.unwrap_or_default();
        out.push(Leftover {
            kind: "container",
            id: c.id.unwrap_or_default(),
            name: c
                .names
                .and_then(|n| n.first().cloned())
                .unwrap_or_default()
                .trim_start_matches('/')
                .to_string(),
            lab: labels.get(LAB_LABEL).cloned().unwrap_or_default(),
        });
    }
    let networks = docker
        .list_networks(Some(
            ListNetworksOptionsBuilder::default()
                .filters(&filters)
                .build(),
        ))
        .await
        .map_err(|e| docker_error("listing networks", e))?;
    for n in networks {
        let labels = n.labels.unwrap_or_default();
        out.push(Leftover {
            kind: "network",
            id: n.id.unwrap_or_default(),
            name: n.name.unwrap_or_default(),
            lab: labels.get(LAB_LABEL).cloned().unwrap_or_default(),
        });
    }
    let volumes = docker
        .list_volumes(Some(
            ListVolumesOptionsBuilder::default()
                .filters(&filters)
                .build(),
        ))
        .await
        .map_err(|e| docker_error("listing volumes", e))?;
    for v in volumes.volumes.unwrap_or_default() {
        out.push(Leftover {
            kind: "volume",
            id: v.name.clone(),
            name: v.name,
            lab: v.labels.get(LAB_LABEL).cloned().unwrap_or_default(),
        });
    }
    Ok(out)
}

/// Removes the objects by id: containers first (forced, with their anonymous volumes), then
/// networks, then volumes. Objects already gone are fine.
pub async fn remove_objects(docker: &Docker, objects: &[Leftover]) -> Result<()> {
    let gone = |e: &bollard::errors::Error| {
        matches!(
            e,
            bollard::errors::Error::DockerResponseServerError {
                status_code: 404,
                ..
            }
        )
    };
    for kind in ["container", "network", "volume"] {
        for o in objects.iter().filter(|o| o.kind == kind) {
            let r = match kind {
                "container" => {
                    docker
                        .remove_container(
                            &o.id,
                            Some(
                                RemoveContainerOptionsBuilder::default()
                                    .force(true)
                                    .v(true)
                                    .build(),
                            ),
                        )
                        .await
                }
                "network" => docker.remove_network(&o.id).await,
                _ => {
                    docker
                        .remove_volume(
                            &o.id,
                            Some(RemoveVolumeOptionsBuilder::default().force(true).build()),
                        )
                        .await
                }
            };
            match r {
                Err(e) if !gone(&e) => {
                    return Err(docker_error(&format!("removing {kind} {}", o.name), e).into());
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// Containers, networks and volumes left by labs (only lab `lab_id` when given) in the engine
/// at `docker_host`.
pub fn find_leftovers(docker_host: Option<&str>, lab_id: Option<&str>) -> Result<Vec<Leftover>> {
    runtime().block_on(async {
        let docker = connect(docker_host).await?;
        find_leftovers_async(&docker, lab_id).await
    })
}

/// `perflab teardown`: removes what [`find_leftovers`] finds (every lab's objects when `lab_id`
/// is `None`, except those of labs whose perflab still runs, by their
/// [journals](crate::journal)) and returns what was removed.
pub fn remove_leftovers(docker_host: Option<&str>, lab_id: Option<&str>) -> Result<Vec<Leftover>> {
    let running = crate::journal::running_lab_ids();
    runtime().block_on(async {
        let docker = connect(docker_host).await?;
        let found: Vec<Leftover> = find_leftovers_async(&docker, lab_id)
            .await?
            .into_iter()
            .filter(|l| lab_id.is_some() || !running.contains(&l.lab))
            .collect();
        remove_objects(&docker, &found).await?;
        Ok(found)
    })
}

/// A warning for a new run that finds objects of other labs (a crashed run, or one still
/// running), or `None` when there are none.
pub fn leftover_warning(leftovers: &[Leftover]) -> Option<String> {
    if leftovers.is_empty() {
        return None;
    }
    let mut labs: Vec<&str> = leftovers.iter().map(|l| l.lab.as_str()).collect();
    labs.sort_unstable();
    labs.dedup();
    Some(format!(
        "found {} Docker object(s) of other perflab labs ({}); if those labs are not running, \
         remove them with `perflab teardown` (they may compete for CPU or ports)",
        leftovers.len(),
        labs.join(", ")
    ))
}

fn valid_cpuset(s: &str) -> bool {
    !s.is_empty()
        && s.split(',').all(|part| {
            let mut it = part.splitn(2, '-');
            it.all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        })
}

/// Docker-safe name part: letters, digits, `_.-`.
fn name_part(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_.-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// A container just created and started.
struct NewContainer {
    id: String,
    host_name: String,
    address: String,
    lab_dir: PathBuf,
}

/// Hosts that are containers of one image, one per role and instance.
pub struct DockerDriver {
    lab_id: String,
    docker: Docker,
    engine: String,
    image: String,
    image_id: String,
    network: NetworkMode,
    /// The lab's bridge network (id, name), created with the first container.
    bridge: Option<(String, String)>,
    cpuset_gateway: Option<String>,
    cpuset_worker: Option<String>,
    engine_version: serde_json::Value,
    pull: PullPolicy,
    /// Images named by versions (reference → id), in the order first used.
    version_images: Vec<(String, String)>,
    /// Hosts by role, instance and image reference ("" for the lab image).
    hosts: HashMap<(Role, String, String), Arc<ContainerHost>>,
    containers: Vec<(String, String)>,
    load_hosts: u32,
    /// The lab's journal (removed by a full teardown).
    journal: std::sync::Arc<crate::journal::Journal>,
}

impl DockerDriver {
    /// Connects to the engine (`DOCKER_HOST`, else the default socket) and checks the options:
    /// `image` (default `perflab/lab:latest`, made by `perflab image build`; it must exist),
    /// `network` (`host` default, or `bridge`), `cpuset.gateway` and `cpuset.worker` (e.g. `1`,
    /// `0-2`; default and `none`: no container-level pinning, the session's `taskset` pins),
    /// `pull` (`missing` default, `always`, `never`: when images named by reference are pulled;
    /// the lab image itself is never pulled). Warns when other labs left objects behind.
    pub fn new(options: &DriverOptions, lab_id: &str) -> Result<Self> {
        Self::with_engine(options, lab_id, None)
    }

    /// Like [`DockerDriver::new`] with the engine address given (`unix://…`, `tcp://…`) rather
    /// than taken from `DOCKER_HOST`.
    pub fn with_engine(
        options: &DriverOptions,
        lab_id: &str,
        docker_host: Option<&str>,
    ) -> Result<Self> {
        for k in options.keys() {
            if !OPTIONS.contains(&k.as_str()) {
                return Err(Error::Usage(format!(
                    "unknown docker driver option \"{k}\": expected one of {}",
                    OPTIONS.join(", ")
                )));
            }
        }
        if lab_id.is_empty() || name_part(lab_id) != lab_id {
            return Err(Error::Usage(format!(
                "lab id \"{lab_id}\" must be letters, digits, '_', '.' or '-' (it names containers)"
            )));
        }
        let network = match options.get("network").map(String::as_str) {
            None | Some("host") => NetworkMode::Host,
            Some("bridge") => NetworkMode::Bridge,
            Some(other) => {
                return Err(Error::Usage(format!(
                    "docker driver option network={other}: expected \"host\" or \"bridge\""
                )));
            }
        };
        for key in ["cpuset.gateway", "cpuset.worker"] {
            if let Some(v) = options.get(key)
                && v != "none"
                && !valid_cpuset(v)
            {
                return Err(Error::Usage(format!(
                    "docker driver option {key}={v}: expected a CPU list like 1 or 0-2,4, or none"
                )));
            }
        }
        let pull: PullPolicy = match options.get("pull") {
            Some(p) => p.parse()?,
            None => PullPolicy::Missing,
        };
        let image = options
            .get("image")
            .cloned()
            .unwrap_or_else(|| DEFAULT_IMAGE.to_string());
        let (addr, _) = engine_address(docker_host);
        runtime().block_on(async {
            let docker = connect(docker_host).await?;
            // An image the user named may come from a registry; the lab image is made here.
            let named = if options.contains_key("image") && pull != PullPolicy::Never {
                Some(ensure_image(&docker, &addr, &image, pull, false).await?)
            } else {
                None
            };
            let found = match named {
                Some(id) => Some(id),
                None => image_id(&docker, &image).await?,
            };
            let image_id = found.ok_or_else(|| Error::MissingTool {
                program: format!("Docker image {image}"),
                where_: format!(" in the engine at {addr}"),
                hint: if options.contains_key("image") {
                    "load or build it first (`perflab image load FILE`, `perflab image build`), \
                         or drop --driver-opt image to use the lab image"
                        .into()
                } else {
                    "run `perflab image build` to make the lab image from this machine's \
                         binaries (or `perflab image load FILE` for a prebuilt one)"
                        .into()
                },
            })?;
            let version = docker
                .version()
                .await
                .map_err(|e| docker_error("reading the engine version", e))?;
            let info = docker
                .info()
                .await
                .map_err(|e| docker_error("reading engine info", e))?;
            let ncpu = info.ncpu.unwrap_or(0).max(0) as usize;
            let pick = |key: &str| options.get(key).filter(|v| *v != "none").cloned();
            let others: Vec<Leftover> = find_leftovers_async(&docker, None)
                .await?
                .into_iter()
                .filter(|l| l.lab != lab_id)
                .collect();
            if let Some(w) = leftover_warning(&others) {
                tracing::warn!("{w}");
            }
            if network == NetworkMode::Bridge {
                tracing::warn!(
                    "docker driver network=bridge: traffic crosses a bridge (and NAT for \
                     published ports), which costs 20%+ throughput; results are not comparable \
                     with host networking"
                );
            }
            Ok(DockerDriver {
                load_hosts: super::load_hosts_option(options)?,
                lab_id: lab_id.to_string(),
                docker,
                engine: addr.clone(),
                image: image.clone(),
                image_id,
                network,
                bridge: None,
                cpuset_gateway: pick("cpuset.gateway"),
                cpuset_worker: pick("cpuset.worker"),
                pull,
                version_images: Vec::new(),
                engine_version: serde_json::json!({
                    "version": version.version,
                    "api_version": version.api_version,
                    "os": version.os,
                    "arch": version.arch,
                    "kernel": version.kernel_version,
                    "ncpu": ncpu,
                }),
                hosts: HashMap::new(),
                containers: Vec::new(),
                journal: {
                    // Before the first container: the engine whose objects carry the lab's label.
                    let j = crate::journal::Journal::create(lab_id, "docker")?;
                    j.update(|r| r.docker_host = Some(addr.clone()))?;
                    j
                },
            })
        })
    }

    /// The lab id the driver labels objects with.
    pub fn lab_id(&self) -> &str {
        &self.lab_id
    }

    /// The Docker client (for tests and tools that inspect the engine).
    pub fn docker(&self) -> &Docker {
        &self.docker
    }

    /// The CPU set a role's container is pinned to.
    pub fn cpuset(&self, role: Role) -> Option<&str> {
        match role {
            Role::Gateway => self.cpuset_gateway.as_deref(),
            Role::Worker | Role::Database => self.cpuset_worker.as_deref(),
        }
    }

    fn labels(&self, role: Role, instance: &str) -> HashMap<String, String> {
        HashMap::from([
            (LAB_LABEL.to_string(), self.lab_id.clone()),
            (ROLE_LABEL.to_string(), role.as_str().to_string()),
            (INSTANCE_LABEL.to_string(), instance.to_string()),
        ])
    }

    async fn ensure_bridge(&mut self) -> Result<(String, String)> {
        if let Some(b) = &self.bridge {
            return Ok(b.clone());
        }
        let name = format!("perflab-{}", self.lab_id);
        let created = self
            .docker
            .create_network(NetworkCreateRequest {
                name: name.clone(),
                driver: Some("bridge".into()),
                // No route out of the lab: traffic stays between the lab's containers.
                internal: Some(true),
                labels: Some(HashMap::from([(
                    LAB_LABEL.to_string(),
                    self.lab_id.clone(),
                )])),
                ..Default::default()
            })
            .await
            .map_err(|e| docker_error(&format!("creating network {name}"), e))?;
        let b = (created.id, name);
        self.bridge = Some(b.clone());
        Ok(b)
    }

    /// Creates and starts the container for `role`/`instance` from image `image_id`
    /// (`image_name` for messages); `suffix` tells apart containers of one role and instance
    /// made from different images.
    async fn create_container(
        &mut self,
        role: Role,
        instance: &str,
        image_id: &str,
        image_name: &str,
        suffix: &str,
    ) -> Result<NewContainer> {
        let name = format!(
            "perflab-{}-{}-{}{suffix}",
            self.lab_id,
            role.as_str(),
            name_part(instance)
        );
        let network_mode = match self.network {
            NetworkMode::Host => "host".to_string(),
            NetworkMode::Bridge => self.ensure_bridge().await?.0,
        };
        let body = ContainerCreateBody {
            image: Some(image_id.to_string()),
            // The container only has to stay up: roles exec into it. The entry point is
            // replaced so that any image idles the same way (an image's own entry point may
            // start its program; its CMD lands in the ignored positional arguments), and
            // commands run as root (uid 0: an image may have no passwd entry for root).
            entrypoint: Some(vec![
                "sh".into(),
                "-c".into(),
                "exec sleep infinity".into(),
                "perflab-idle".into(),
            ]),
            cmd: None,
            user: Some("0:0".into()),
            labels: Some(self.labels(role, instance)),
            host_config: Some(HostConfig {
                init: Some(true),
                network_mode: Some(network_mode),
                cpuset_cpus: self.cpuset(role).map(str::to_string),
                ..Default::default()
            }),
            ..Default::default()
        };
        let created = self
            .docker
            .create_container(
                Some(CreateContainerOptionsBuilder::default().name(&name).build()),
                body,
            )
            .await
            .map_err(|e| docker_error(&format!("creating container {name}"), e))?;
        let id = created.id;
        self.containers.push((id.clone(), name.clone()));
        self.docker
            .start_container(&id, None)
            .await
            .map_err(|e| docker_error(&format!("starting container {name}"), e))?;
        let address = match self.network {
            NetworkMode::Host => "127.0.0.1".to_string(),
            NetworkMode::Bridge => {
                let net = self
                    .bridge
                    .as_ref()
                    .map(|b| b.1.clone())
                    .unwrap_or_default();
                let info = self
                    .docker
                    .inspect_container(&id, None::<InspectContainerOptions>)
                    .await
                    .map_err(|e| docker_error(&format!("inspecting container {name}"), e))?;
                info.network_settings
                    .and_then(|s| s.networks)
                    .and_then(|n| n.get(&net).and_then(|e| e.ip_address.clone()))
                    .filter(|ip| !ip.is_empty())
                    .ok_or_else(|| {
                        Error::Lab(format!("container {name} got no address on network {net}"))
                    })?
            }
        };
        let lab_dir = PathBuf::from(format!(
            "/perflab/{}/{}-{}{suffix}",
            self.lab_id,
            role.as_str(),
            name_part(instance)
        ));
        // The image is in the name so that "wrk not found on host worker (image …)" says where
        // it was looked for.
        let host_name = if instance == "default" {
            format!("{} (image {image_name})", role.as_str())
        } else {
            format!("{}-{instance} (image {image_name})", role.as_str())
        };
        Ok(NewContainer {
            id,
            host_name,
            address,
            lab_dir,
        })
    }
}

impl DockerDriver {
    fn add_host(
        &mut self,
        key: (Role, String, String),
        c: NewContainer,
        image_name: &str,
    ) -> Result<Arc<dyn Host>> {
        let host = Arc::new(ContainerHost::new(
            &c.host_name,
            self.docker.clone(),
            &c.id,
            image_name,
            &c.address,
            &c.lab_dir,
        )?);
        self.hosts.insert(key, host.clone());
        Ok(host)
    }
}

/// The lab's containers die with the driver: the session drops its driver after any teardown,
/// and the containers of a lab id are of no use to anyone afterwards. Dropping removes every
/// object labelled with the lab id (as [`Driver::teardown`] with `full` does), so a run that ends
/// in success, failure or Ctrl-C leaves nothing behind; only a killed process does, and
/// `perflab teardown` finds that by label.
impl Drop for DockerDriver {
    fn drop(&mut self) {
        if self.containers.is_empty() && self.bridge.is_none() {
            self.journal.remove();
            return;
        }
        let docker = self.docker.clone();
        let lab = self.lab_id.clone();
        let r = runtime().block_on(async move {
            let found = find_leftovers_async(&docker, Some(&lab)).await?;
            remove_objects(&docker, &found).await
        });
        match r {
            Ok(()) => self.journal.remove(),
            Err(e) => tracing::warn!(
                "could not remove the Docker objects of lab {}: {e:#}; run `perflab teardown --driver docker`",
                self.lab_id
            ),
        }
    }
}

impl Driver for DockerDriver {
    fn name(&self) -> &'static str {
        "docker"
    }

    fn host(&mut self, role: Role, instance: &str) -> Result<Arc<dyn Host>> {
        let key = (role, instance.to_string(), String::new());
        if let Some(h) = self.hosts.get(&key) {
            return Ok(h.clone());
        }
        let (id, name) = (self.image_id.clone(), self.image.clone());
        let c = runtime().block_on(self.create_container(role, instance, &id, &name, ""))?;
        self.add_host(key, c, &name)
    }

    fn runs_images(&self) -> bool {
        true
    }

    fn load_hosts(&self) -> u32 {
        self.load_hosts
    }

    fn image_id(&self, reference: &str) -> Option<String> {
        self.version_images
            .iter()
            .find(|(r, _)| r == reference)
            .map(|(_, id)| id.clone())
    }

    fn host_from_image(
        &mut self,
        role: Role,
        instance: &str,
        image: &GatewayImage,
    ) -> Result<Arc<dyn Host>> {
        let key = (role, instance.to_string(), image.reference.clone());
        if let Some(h) = self.hosts.get(&key) {
            return Ok(h.clone());
        }
        let known = self
            .version_images
            .iter()
            .position(|(r, _)| *r == image.reference);
        let (index, id) = match known {
            Some(i) => (i, self.version_images[i].1.clone()),
            None => {
                let id = runtime().block_on(ensure_image(
                    &self.docker,
                    &self.engine,
                    &image.reference,
                    self.pull,
                    image.always_pull,
                ))?;
                self.version_images
                    .push((image.reference.clone(), id.clone()));
                (self.version_images.len() - 1, id)
            }
        };
        let suffix = format!("-image{}", index + 1);
        let c = runtime().block_on(self.create_container(
            role,
            instance,
            &id,
            &image.reference,
            &suffix,
        ))?;
        self.add_host(key, c, &image.reference)
    }

    fn teardown(&mut self, full: bool) -> Result<()> {
        let mut first_err = None;
        for host in self.hosts.values() {
            if let Err(e) = host.stop_all(Duration::from_secs(2)) {
                first_err.get_or_insert(Error::from(e));
            }
            if !full {
                let dir = PathBuf::from(format!("/perflab/{}", self.lab_id));
                if let Err(e) = host.remove_dir_all(&dir) {
                    first_err.get_or_insert(Error::from(e));
                }
            }
        }
        if full {
            self.hosts.clear();
            self.containers.clear();
            self.bridge = None;
            runtime().block_on(async {
                let found = find_leftovers_async(&self.docker, Some(&self.lab_id)).await?;
                remove_objects(&self.docker, &found).await
            })?;
            if first_err.is_none() {
                self.journal.remove();
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn describe(&self) -> serde_json::Value {
        let containers: serde_json::Map<String, serde_json::Value> = self
            .containers
            .iter()
            .map(|(id, name)| (name.clone(), serde_json::Value::String(id.clone())))
            .collect();
        serde_json::json!({
            "driver": "docker",
            "engine_address": self.engine,
            "engine": self.engine_version,
            "lab_id": self.lab_id,
            "network": match self.network {
                NetworkMode::Host => "host",
                NetworkMode::Bridge => "bridge",
            },
            "bridge_network": self.bridge.as_ref().map(|b| serde_json::json!({"id": b.0, "name": b.1})),
            "image": self.image,
            "image_id": self.image_id,
            "pull": format!("{:?}", self.pull).to_lowercase(),
            "version_images": self
                .version_images
                .iter()
                .map(|(r, id)| serde_json::json!({"reference": r, "id": id}))
                .collect::<Vec<_>>(),
            "cpuset": {
                "gateway": self.cpuset_gateway,
                "worker": self.cpuset_worker,
            },
            "containers": containers,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpusets() {
        assert!(valid_cpuset("0-2,4"));
        assert!(!valid_cpuset("a"));
        assert!(!valid_cpuset("1-"));
    }

    #[test]
    fn unknown_option_is_usage_error() {
        let mut o = DriverOptions::new();
        o.insert("imag".into(), "x".into());
        let e = DockerDriver::new(&o, "t1").err().unwrap();
        assert!(e.to_string().contains("imag"), "{e}");
    }
}
