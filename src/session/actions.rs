//! Actions during load: checked against the running gateway, then run on time while the load
//! runs.

use std::time::{Duration, Instant};

use crate::driver::Role;
use crate::during::{self, ActionKind, ActionRecord, DuringAction, Listener};
use crate::host::HttpCall;
use crate::role::gateway::RunningGateway;
use crate::{Error, Result};

use super::Session;

impl Session {
    /// Checks that the running gateway (`instance`, or the first) can take `actions`: every
    /// listener they name exists and it can reload in place. Call it before the load starts, so
    /// a case whose actions cannot run fails before anything is measured.
    pub fn check_during(&self, actions: &[DuringAction], instance: Option<&str>) -> Result<()> {
        if actions.is_empty() {
            return Ok(());
        }
        let gw = self.target_gateway(instance).ok_or_else(|| {
            Error::Usage("actions during load need a running gateway (not a baseline run)".into())
        })?;
        for (i, a) in actions.iter().enumerate() {
            let problem = match a.action {
                ActionKind::Reload => gw
                    .reload
                    .is_none()
                    .then(|| format!("gateway {} cannot reload in place", gw.kind)),
                _ => listener_uri(gw, a.listener()).is_none().then(|| {
                    format!(
                        "gateway {} has no {} listener in this lab",
                        gw.kind,
                        a.listener().as_str()
                    )
                }),
            };
            if let Some(p) = problem {
                return Err(Error::Usage(format!("during[{}]: {p}", i + 1)));
            }
        }
        Ok(())
    }

    /// Runs `actions` on time while the load runs (start it with
    /// [`Session::start_load_recording`] to get the traffic around each action), and returns
    /// when the last one is done or the load's planned duration is over. HTTP requests and
    /// scrapes go from the load host, where the gateway's lab addresses are reachable. An action
    /// that fails is a finding, recorded with its error, not an error of the run. Returns each
    /// occurrence's record and, for scrapes, the answer's body.
    pub fn run_during(
        &mut self,
        actions: &[DuringAction],
        instance: Option<&str>,
    ) -> Result<Vec<(ActionRecord, Option<Vec<u8>>)>> {
        let (started, duration) = match &self.load {
            Some(lp) => (lp.started, lp.loads[0].duration_s),
            None => {
                return Err(Error::Usage(
                    "no load is running: call start_load_recording first".into(),
                ));
            }
        };
        self.check_during(actions, instance)?;
        let worker = self.host(Role::Worker, "default")?;
        let mut out = Vec::new();
        let mut reloaded = None;
        for (at, i) in during::schedule(actions, duration) {
            loop {
                crate::signals::check()?;
                let now = started.elapsed().as_secs_f64();
                if now >= at {
                    break;
                }
                std::thread::sleep(Duration::from_secs_f64((at - now).min(0.05)));
            }
            let started_s = started.elapsed().as_secs_f64();
            if started_s >= duration {
                break;
            }
            let a = &actions[i];
            let gw = self
                .target_gateway(instance)
                .ok_or_else(|| Error::Lab("the gateway went away during the load".into()))?;
            let mut rec = ActionRecord {
                action: a.action.as_str().to_string(),
                scheduled_s: at,
                started_s,
                ..Default::default()
            };
            let mut body = None;
            if a.action == ActionKind::Reload {
                let t = Instant::now();
                let r = gw.kind.require_adapter()?.reload(gw);
                rec.duration_s = t.elapsed().as_secs_f64();
                rec.ok = r.is_ok();
                rec.error = r.err().map(|e| format!("{e:#}"));
                reloaded = Some(gw.instance.clone());
            } else {
                let base = listener_uri(gw, a.listener()).unwrap_or_default();
                let url = format!(
                    "{}{}",
                    base.trim_end_matches('/'),
                    a.path.as_deref().unwrap_or("/")
                );
                rec.method = Some(a.method().to_string());
                rec.path = a.path.clone();
                rec.port = Some(a.listener().as_str().to_string());
                let call = HttpCall::json(a.method(), url, a.body.clone().map(String::into_bytes));
                match worker.http_request(&call, Duration::from_secs(30)) {
                    Ok(r) => {
                        rec.status = Some(r.status);
                        rec.duration_s = r.duration_s;
                        rec.ok = (200..300).contains(&r.status);
                        if !rec.ok {
                            rec.error = Some(format!("HTTP {}", r.status));
                        }
                        if a.action == ActionKind::Scrape {
                            body = Some(r.body);
                        } else {
                            let n = r.body.len().min(during::ANSWER_BYTES);
                            rec.answer = Some(String::from_utf8_lossy(&r.body[..n]).into_owned());
                        }
                    }
                    Err(e) => rec.error = Some(e.to_string()),
                }
            }
            out.push((rec, body));
        }
        if let Some(name) = reloaded {
            // The reload replaced worker processes: from now on only the main process tells
            // whether the gateway lives, and the run's gateway CPU figure is left out.
            self.gateway_pids.insert(name, Default::default());
            if let Some(lp) = self.load.as_mut() {
                lp.reloaded = true;
            }
        }
        Ok(out)
    }
}

/// The URI of one of a gateway's listeners, as the load host sees it.
pub(super) fn listener_uri(gw: &RunningGateway, l: Listener) -> Option<String> {
    match l {
        Listener::Admin => gw.admin_uri.clone(),
        Listener::Proxy => Some(gw.proxy_uri.clone()),
        Listener::Status => gw.status_uri.clone(),
    }
}
