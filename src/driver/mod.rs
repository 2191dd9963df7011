//! Drivers: where the lab's hosts come from. A driver only hands out [`Host`]s for roles; all
//! role logic lives in `role/` and is shared by every driver.

pub mod docker;
pub mod local;
pub mod terraform;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::host::Host;
use crate::{Error, Result};

/// The roles a lab hands hosts out for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// The gateway under test (one host per instance where the driver can).
    Gateway,
    /// The upstream server and the load generator.
    Worker,
    /// PostgreSQL for gateways that need one.
    Database,
}

impl Role {
    /// Lower-case name, used in paths and labels.
    pub fn as_str(&self) -> &'static str {
        match self {
            Role::Gateway => "gateway",
            Role::Worker => "worker",
            Role::Database => "database",
        }
    }
}

/// A container image a host should run from: an `image:<ref>` version, or the image a gateway
/// adapter picks for a release (Kong's `kong:<version>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayImage {
    /// The image reference (`kong:3.9.1`, `registry.example:5000/gw:1`, an image id).
    pub reference: String,
    /// Pull even when the engine has the image (moving tags such as Kong's nightly image).
    pub always_pull: bool,
}

impl GatewayImage {
    /// An image that is pulled only when the engine does not have it.
    pub fn new(reference: impl Into<String>) -> Self {
        GatewayImage {
            reference: reference.into(),
            always_pull: false,
        }
    }
}

/// Free-form driver options from the command line (`--driver-opt key=value`) or the API.
pub type DriverOptions = BTreeMap<String, String>;

/// The drivers perflab knows: where the lab's hosts come from. The `match` in
/// [`DriverKind::create`] is the registry; the names are clap's and serde's (`local`, …).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum DriverKind {
    /// Processes on this machine, each in its own process group.
    #[default]
    Local,
    /// A container per role on a Docker engine ($DOCKER_HOST).
    Docker,
    /// Machines provisioned by a terraform module, reached over SSH.
    Terraform,
}

crate::names::impl_names!(DriverKind => "driver");

impl DriverKind {
    /// Creates a driver of this kind for lab `lab_id`, warning first about labs whose perflab
    /// died without tearing down.
    pub fn create(self, options: &DriverOptions, lab_id: &str) -> Result<Box<dyn Driver>> {
        if let Some(note) = crate::journal::dead_labs_note() {
            tracing::warn!("{note}");
        }
        Ok(match self {
            DriverKind::Local => Box::new(local::LocalDriver::new(options, lab_id)?),
            DriverKind::Docker => Box::new(docker::DockerDriver::new(options, lab_id)?),
            DriverKind::Terraform => Box::new(terraform::TerraformDriver::new(options, lab_id)?),
        })
    }
}

/// A source of hosts.
pub trait Driver: Send {
    /// The driver's name (`local`, `docker`, `terraform`).
    fn name(&self) -> &'static str;
    /// The host for `role`; `instance` names one of several gateways ("default" otherwise).
    /// Calling it again for the same role and instance returns the same host.
    fn host(&mut self, role: Role, instance: &str) -> Result<Arc<dyn Host>>;
    /// Whether hosts can run from a chosen container image ([`Driver::host_from_image`]).
    fn runs_images(&self) -> bool {
        false
    }
    /// The host for `role`/`instance` running `image` rather than the lab's own image. Only
    /// drivers whose hosts are containers can; the others refuse with a usage error.
    fn host_from_image(
        &mut self,
        _role: Role,
        _instance: &str,
        image: &GatewayImage,
    ) -> Result<Arc<dyn Host>> {
        Err(Error::Usage(format!(
            "version image:{} needs the docker driver: the {} driver runs the programs installed \
             on its hosts (use --driver docker, or a release/git version)",
            image.reference,
            self.name()
        )))
    }
    /// The id of an image [`Driver::host_from_image`] ran (`None` where hosts are not images).
    fn image_id(&self, _reference: &str) -> Option<String> {
        None
    }
    /// Whether the hosts are machines provisioned for the lab, where a gateway release that is
    /// not installed may be installed from its distribution package.
    fn installs_packages(&self) -> bool {
        false
    }
    /// Stops what the lab started on its hosts and removes its files; `full` also removes the
    /// hosts themselves where the driver created them (containers, machines).
    fn teardown(&mut self, full: bool) -> Result<()>;
    /// Facts about the environment for results (network mode, images, provider).
    fn describe(&self) -> serde_json::Value;
    /// How many load hosts the driver hands out (`--driver-opt load_hosts=N`, default 1). Load
    /// host 1 is the worker; the others are [`Driver::host`]`(Role::Worker, "load-N")`.
    /// Open-loop load runs on all of them at once, the rate split between them.
    fn load_hosts(&self) -> u32 {
        1
    }
}

/// The most load hosts a lab may ask for.
pub const MAX_LOAD_HOSTS: u32 = 16;

/// Reads the `load_hosts` driver option (1 when absent), bounded 1 to [`MAX_LOAD_HOSTS`].
pub fn load_hosts_option(options: &DriverOptions) -> Result<u32> {
    match options.get("load_hosts") {
        None => Ok(1),
        Some(v) => v
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=MAX_LOAD_HOSTS).contains(n))
            .ok_or_else(|| {
                Error::Usage(format!(
                    "driver option load_hosts must be a whole number from 1 to {MAX_LOAD_HOSTS} (got \"{v}\")"
                ))
            }),
    }
}

/// The instance name of load host `i` (0-based) for [`Driver::host`] with [`Role::Worker`]:
/// the worker itself (`default`) first, then `load-2`, `load-3`, ….
pub fn load_host_instance(i: u32) -> String {
    if i == 0 {
        "default".into()
    } else {
        format!("load-{}", i + 1)
    }
}
