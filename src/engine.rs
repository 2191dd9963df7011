//! The Docker engine client: the shared Tokio runtime, where the engine is, connecting to it,
//! and its errors.
//!
//! Why a module of its own: the docker driver, the container host and image building all talk
//! to the engine. Kept in the driver, it made the host and the image builder depend on the
//! driver that uses them (an import cycle); here it is a leaf of the layering that knows
//! nothing of the lab, and [`EngineError`] converts into the library's error.

use std::sync::OnceLock;
use std::time::Duration;

use bollard::Docker;

/// The shared runtime that the synchronous driver and hosts block on. perflab's own code is
/// synchronous and never runs inside a runtime; calling these from async code would panic.
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("perflab-docker")
            .enable_all()
            .build()
            .expect("cannot start the Tokio runtime for Docker")
    })
}

/// How to get an engine that answers.
pub const START_ENGINE: &str = "start dockerd (scripts/start-dockerd.sh starts a private one on \
     unix:///run/perflab-docker.sock) and set DOCKER_HOST";

/// What went wrong talking to the Docker engine.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The engine address is neither `unix://PATH` nor `tcp://HOST:PORT`.
    #[error(
        "Docker engine address {addr} ({source_note}): expected unix://PATH or tcp://HOST:PORT"
    )]
    BadAddress {
        /// The address.
        addr: String,
        /// Where it came from (see [`engine_address`]).
        source_note: &'static str,
    },
    /// No engine answers at the address.
    #[error("Docker engine not found at {addr} ({source_note}): {why}; {START_ENGINE}")]
    NoEngine {
        /// The address.
        addr: String,
        /// Where it came from (see [`engine_address`]).
        source_note: &'static str,
        /// What happened.
        why: String,
    },
    /// An API call failed.
    #[error("docker: {context}: {cause}")]
    Api {
        /// What was being done.
        context: String,
        /// The engine's answer.
        cause: bollard::errors::Error,
    },
}

/// A Docker API error with what was being done.
pub fn docker_error(context: &str, e: bollard::errors::Error) -> EngineError {
    EngineError::Api {
        context: context.to_string(),
        cause: e,
    }
}

/// Where the engine is looked for: the argument, else `DOCKER_HOST`, else the default socket;
/// with a note saying which it was.
pub fn engine_address(docker_host: Option<&str>) -> (String, &'static str) {
    match docker_host {
        Some(h) => (h.to_string(), "given"),
        None => match std::env::var("DOCKER_HOST") {
            Ok(h) if !h.is_empty() => (h, "from DOCKER_HOST"),
            _ => (
                "unix:///var/run/docker.sock".to_string(),
                "the default; set DOCKER_HOST to use another",
            ),
        },
    }
}

/// Connects to the engine at `docker_host` (see [`engine_address`]) and checks that it answers.
/// Understands `unix://PATH` and `tcp://HOST:PORT`.
pub async fn connect(docker_host: Option<&str>) -> Result<Docker, EngineError> {
    let (addr, source_note) = engine_address(docker_host);
    let no_engine = |why: String| EngineError::NoEngine {
        addr: addr.clone(),
        source_note,
        why,
    };
    if !(addr.starts_with("unix://") || addr.starts_with("tcp://")) {
        return Err(EngineError::BadAddress {
            addr: addr.clone(),
            source_note,
        });
    }
    let docker = Docker::connect_with_host(&addr).map_err(|e| match e {
        bollard::errors::Error::SocketNotFoundError(p) => {
            no_engine(format!("the socket {p} does not exist"))
        }
        e => no_engine(e.to_string()),
    })?;
    match tokio::time::timeout(Duration::from_secs(10), docker.ping()).await {
        Err(_) => return Err(no_engine("it did not answer within 10 s".into())),
        Ok(Err(e)) => return Err(no_engine(format!("it does not answer ({e})"))),
        Ok(Ok(_)) => {}
    }
    docker
        .negotiate_version()
        .await
        .map_err(|e| no_engine(format!("version negotiation failed ({e})")))
}
