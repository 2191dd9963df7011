//! What a case asks the gateway to be configured with: services, routes, plugins, consumers,
//! credentials, load-balancer upstreams and targets.
//!
//! One description serves every gateway kind and every Kong mode: nginx and HAProxy render the
//! services and routes as locations/backends (plugins, consumers and upstreams are Kong's
//! entities and only Kong uses them); Kong creates everything through the Admin API or writes it
//! as declarative config. The shapes follow what Kong's own perf scenarios built
//! (spec/04-perf/01-rps): global plugins (plugin iterator), plugins on one service or route
//! ("irrelevant" plugins), consumers with credentials (key-auth), upstreams with weighted
//! targets (balancer).

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
    /// Plugins with their configuration and scope (every service unless `scope` says else).
    #[serde(default)]
    pub plugins: Vec<Plugin>,
    /// Consumers to create (`consumer-1` … `consumer-N`), each with one credential of every
    /// type in [`Entities::credentials`].
    #[serde(default)]
    pub consumers: u32,
    /// Credential types every consumer gets (default `["key-auth"]`): `key-auth` (key `key-N`),
    /// `basic-auth` (user `consumer-N`, password `password-N`), `hmac-auth` (user `consumer-N`,
    /// secret `secret-N`), `jwt` (key `jwt-N`, HS256 secret `secret-N`).
    #[serde(default = "key_auth")]
    pub credentials: Vec<Credential>,
    /// Load-balancer upstreams (`u1` … `uN`); when there are any, service `s` points at upstream
    /// `u{(s-1) % N + 1}` instead of the upstream server directly.
    #[serde(default)]
    pub upstreams: u32,
    /// Targets per upstream: target `t` is the upstream server's port `(t-1) % ports`.
    #[serde(default = "one")]
    pub targets_per_upstream: u32,
    /// Target `t` gets weight `t × target_weight_step` (Kong's balancer scenario used 5);
    /// 0 (the default) leaves Kong's default weight, 100.
    #[serde(default)]
    pub target_weight_step: u32,
}

fn key_auth() -> Vec<Credential> {
    vec![Credential::KeyAuth]
}

/// A type of consumer credential (Kong's auth plugins).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Credential {
    /// `key-auth`: key `key-N`.
    #[serde(rename = "key-auth")]
    KeyAuth,
    /// `basic-auth`: user `consumer-N`, password `password-N`.
    #[serde(rename = "basic-auth")]
    BasicAuth,
    /// `hmac-auth`: user `consumer-N`, secret `secret-N`.
    #[serde(rename = "hmac-auth")]
    HmacAuth,
    /// `jwt`: key (`iss`) `jwt-N`, HS256 secret `secret-N`.
    #[serde(rename = "jwt")]
    Jwt,
}

impl Credential {
    /// The plugin name, also the Admin API path under `/consumers/{username}/`.
    pub fn plugin(&self) -> &'static str {
        match self {
            Credential::KeyAuth => "key-auth",
            Credential::BasicAuth => "basic-auth",
            Credential::HmacAuth => "hmac-auth",
            Credential::Jwt => "jwt",
        }
    }

    /// The key of a consumer's credentials of this type in Kong's declarative format.
    pub fn declarative_key(&self) -> &'static str {
        match self {
            Credential::KeyAuth => "keyauth_credentials",
            Credential::BasicAuth => "basicauth_credentials",
            Credential::HmacAuth => "hmacauth_credentials",
            Credential::Jwt => "jwt_secrets",
        }
    }

    /// The credential of consumer `n` (1-based) as a Kong entity body.
    pub fn body(&self, n: u32) -> serde_json::Value {
        match self {
            Credential::KeyAuth => serde_json::json!({ "key": format!("key-{n}") }),
            Credential::BasicAuth => serde_json::json!({
                "username": format!("consumer-{n}"),
                "password": format!("password-{n}"),
            }),
            Credential::HmacAuth => serde_json::json!({
                "username": format!("consumer-{n}"),
                "secret": format!("secret-{n}"),
            }),
            Credential::Jwt => serde_json::json!({
                "key": format!("jwt-{n}"),
                "secret": format!("secret-{n}"),
                "algorithm": "HS256",
            }),
        }
    }
}

fn one() -> u32 {
    1
}

impl Default for Entities {
    /// One service with one route, no plugins, no consumers, no upstreams (the same as an empty
    /// table); consumers would get key-auth credentials.
    fn default() -> Self {
        Entities {
            services: 1,
            routes_per_service: 1,
            plugins: Vec::new(),
            consumers: 0,
            credentials: key_auth(),
            upstreams: 0,
            targets_per_upstream: 1,
            target_weight_step: 0,
        }
    }
}

/// A plugin, its configuration and where it applies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plugin {
    /// Plugin name (`key-auth`, `rate-limiting`, …).
    pub name: String,
    /// Its `config` object.
    #[serde(default)]
    pub config: serde_json::Map<String, serde_json::Value>,
    /// What it is attached to (default: every service).
    #[serde(default)]
    pub scope: Scope,
    /// Only these entities of the scope, by name (`s2` for a service, `s2r1` for a route,
    /// `consumer-3` for a consumer); empty: all of them. Kong's plugin-iterator scenario put
    /// plugins on a service and a route the load never uses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub only: Vec<String>,
}

/// What a plugin is attached to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Every request (Kong's global plugins).
    Global,
    /// Each service.
    #[default]
    Service,
    /// Each route.
    Route,
    /// Each consumer.
    Consumer,
}

impl Plugin {
    /// Whether the plugin applies to the entity named `name` of its scope.
    pub fn applies_to(&self, name: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|o| o == name)
    }
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

    /// The names of the entities a plugin's `only` may name, for its scope (`None` for global).
    pub fn names_in(&self, scope: Scope) -> Option<Vec<String>> {
        match scope {
            Scope::Global => None,
            Scope::Service => Some((1..=self.services).map(|s| format!("s{s}")).collect()),
            Scope::Route => Some(
                self.route_paths()
                    .into_iter()
                    .map(|p| p.trim_start_matches('/').to_string())
                    .collect(),
            ),
            Scope::Consumer => Some(
                (1..=self.consumers)
                    .map(|n| format!("consumer-{n}"))
                    .collect(),
            ),
        }
    }

    /// Checks that every plugin's `only` names existing entities of its scope (global plugins
    /// take none) and that the credential types are distinct.
    pub fn check(&self) -> Result<(), String> {
        for p in &self.plugins {
            match self.names_in(p.scope) {
                None if !p.only.is_empty() => {
                    return Err(format!(
                        "plugin {}: a global plugin takes no `only`",
                        p.name
                    ));
                }
                Some(names) => {
                    if let Some(bad) = p.only.iter().find(|o| !names.contains(o)) {
                        return Err(format!(
                            "plugin {}: `only` names {bad:?}, which the case does not create",
                            p.name
                        ));
                    }
                }
                None => {}
            }
        }
        let mut seen = Vec::new();
        for c in &self.credentials {
            if seen.contains(c) {
                return Err(format!("credential {} is listed twice", c.plugin()));
            }
            seen.push(*c);
        }
        Ok(())
    }

    /// True when the case has exactly one route (it then also matches `/`).
    pub fn single_route(&self) -> bool {
        self.services * self.routes_per_service == 1
    }
}
