//! What a case asks the gateway to be configured with: services, routes, plugins, consumers.
//!
//! One description serves every gateway kind and every Kong mode: nginx and HAProxy render it as
//! locations/backends, Kong creates it through the Admin API or writes it as declarative config.

use serde::{Deserialize, Serialize};

/// The gateway configuration a case asks for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entities {
    /// Number of services (each points at the upstream, round-robin over its ports).
    #[serde(default = "one")]
    pub services: u32,
    /// Routes per service; route `i` of service `s` matches path `/s{s}r{i}` (and `/` routes to
    /// the first route when `routes` is 1 and `services` is 1).
    #[serde(default = "one")]
    pub routes_per_service: u32,
    /// Plugins applied to every service, with their configuration.
    #[serde(default)]
    pub plugins: Vec<Plugin>,
    /// Consumers to create (`consumer-1` … `consumer-N`), each with a key-auth key `key-N`.
    #[serde(default)]
    pub consumers: u32,
}

fn one() -> u32 {
    1
}

impl Default for Entities {
    /// One service with one route, no plugins, no consumers (the same as an empty table).
    fn default() -> Self {
        Entities {
            services: 1,
            routes_per_service: 1,
            plugins: Vec::new(),
            consumers: 0,
        }
    }
}

/// A plugin and its configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plugin {
    /// Plugin name (`key-auth`, `rate-limiting`, …).
    pub name: String,
    /// Its `config` object.
    #[serde(default)]
    pub config: serde_json::Map<String, serde_json::Value>,
}

impl Entities {
    /// The request paths of every route, in order; load scripts spread requests over them.
    pub fn route_paths(&self) -> Vec<String> {
        let mut v = Vec::new();
        for s in 1..=self.services {
            for r in 1..=self.routes_per_service {
                v.push(format!("/s{s}r{r}"));
            }
        }
        v
    }

    /// True when the case has exactly one route (it then also matches `/`).
    pub fn single_route(&self) -> bool {
        self.services * self.routes_per_service == 1
    }
}
