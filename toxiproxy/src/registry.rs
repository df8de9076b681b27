//! The proxy registry: every proxy's config and toxics, and for enabled proxies the running
//! noxious proxy task. One async mutex serialises API operations (as in Toxiproxy).
//!
//! Order of a disable: send the noxious stop signal, then wait for the proxy task's close
//! signal, which it sends after dropping its listener; the stop signal is forked into every
//! connection's links, which end and drop both sockets.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener as StdTcpListener, ToSocketAddrs};
use std::time::Duration;

use noxious::proxy::{ProxyConfig, ProxyRunner, Runner, Toxics};
use noxious::signal::{Close, Stop, Stopper};
use noxious::socket::TcpListener;
use noxious::toxic::{ToxicEvent, ToxicEventKind, ToxicEventResult};
use serde_json::Value;
use tokio::sync::Mutex;

use crate::error::ApiError;
use crate::model::{ProxyCreate, ProxyUpdate, Toxic, ToxicRequest};

/// How long an API call waits for a proxy task to apply a toxic change or to shut down.
const PROXY_TASK_TIMEOUT_MS: u64 = 5_000;

/// A running noxious proxy task.
struct Running {
    stopper: Stopper,
    close: Close,
    events: bmrng::RequestSender<ToxicEvent, ToxicEventResult>,
}

/// One proxy: its config, its toxics, and its task while enabled.
struct Entry {
    name: String,
    listen: String,
    upstream: String,
    toxics: Vec<Toxic>,
    running: Option<Running>,
}

impl Entry {
    fn to_json(&self) -> Value {
        serde_json::json!({
            "name": self.name,
            "listen": self.listen,
            "upstream": self.upstream,
            "enabled": self.running.is_some(),
            "toxics": self.toxics.iter().map(Toxic::to_json).collect::<Vec<_>>(),
        })
    }

    fn toxic_index(&self, name: &str) -> Result<usize, ApiError> {
        self.toxics
            .iter()
            .position(|t| t.name == name)
            .ok_or(ApiError::ToxicNotFound)
    }
}

/// All proxies of one server.
pub struct Registry {
    proxies: Mutex<BTreeMap<String, Entry>>,
    seed: Option<u64>,
}

impl Registry {
    /// An empty registry. With a `seed`, noxious's per-connection randomness (toxicity rolls,
    /// jitter, slicer sizes) is seeded from it and the proxy name.
    pub fn new(seed: Option<u64>) -> Self {
        Registry {
            proxies: Mutex::new(BTreeMap::new()),
            seed,
        }
    }

    /// `GET /proxies`: name -> proxy.
    pub async fn list(&self) -> Value {
        let proxies = self.proxies.lock().await;
        let map: serde_json::Map<String, Value> = proxies
            .iter()
            .map(|(name, e)| (name.clone(), e.to_json()))
            .collect();
        Value::Object(map)
    }

    /// `GET /proxies/{name}`.
    pub async fn get(&self, name: &str) -> Result<Value, ApiError> {
        let proxies = self.proxies.lock().await;
        proxies
            .get(name)
            .map(Entry::to_json)
            .ok_or(ApiError::ProxyNotFound)
    }

    /// `POST /proxies`: create (and start when enabled). 409 if the name exists.
    pub async fn create(&self, req: ProxyCreate) -> Result<Value, ApiError> {
        req.validate()?;
        let mut proxies = self.proxies.lock().await;
        if proxies.contains_key(&req.name) {
            return Err(ApiError::ProxyExists);
        }
        let entry = self.start_new(req).await?;
        let json = entry.to_json();
        proxies.insert(entry.name.clone(), entry);
        Ok(json)
    }

    /// `POST /populate`: create missing proxies, leave identical ones (and their toxics) alone
    /// apart from `enabled`, and replace those whose addresses differ.
    pub async fn populate(&self, list: Vec<ProxyCreate>) -> Result<Value, ApiError> {
        for req in &list {
            req.validate()?;
        }
        let mut proxies = self.proxies.lock().await;
        let mut out = Vec::with_capacity(list.len());
        for req in list {
            let same = proxies
                .get(&req.name)
                .is_some_and(|e| e.listen == req.listen && e.upstream == req.upstream);
            if same {
                let entry = proxies.get_mut(&req.name).ok_or(ApiError::ProxyNotFound)?;
                self.set_enabled(entry, req.enabled).await?;
                out.push(entry.to_json());
                continue;
            }
            if let Some(mut old) = proxies.remove(&req.name) {
                stop(&mut old).await;
            }
            let entry = self.start_new(req).await?;
            out.push(entry.to_json());
            proxies.insert(entry.name.clone(), entry);
        }
        Ok(serde_json::json!({ "proxies": out }))
    }

    /// `POST /proxies/{name}`: change addresses and/or enable/disable.
    pub async fn update(&self, name: &str, req: ProxyUpdate) -> Result<Value, ApiError> {
        let mut proxies = self.proxies.lock().await;
        let entry = proxies.get_mut(name).ok_or(ApiError::ProxyNotFound)?;
        let listen_changed = req.listen.as_ref().is_some_and(|l| *l != entry.listen);
        let upstream_changed = req.upstream.as_ref().is_some_and(|u| *u != entry.upstream);
        if listen_changed || upstream_changed {
            let was_running = entry.running.is_some();
            stop(entry).await;
            entry.listen = req.listen.unwrap_or_else(|| entry.listen.clone());
            entry.upstream = req.upstream.unwrap_or_else(|| entry.upstream.clone());
            self.set_enabled(entry, req.enabled.unwrap_or(was_running))
                .await?;
        } else if let Some(enabled) = req.enabled {
            self.set_enabled(entry, enabled).await?;
        }
        Ok(entry.to_json())
    }

    /// `DELETE /proxies/{name}`: stop and forget.
    pub async fn delete(&self, name: &str) -> Result<(), ApiError> {
        let mut proxies = self.proxies.lock().await;
        let mut entry = proxies.remove(name).ok_or(ApiError::ProxyNotFound)?;
        stop(&mut entry).await;
        Ok(())
    }

    /// `POST /reset`: enable every proxy and remove every toxic.
    pub async fn reset(&self) -> Result<(), ApiError> {
        let mut proxies = self.proxies.lock().await;
        for entry in proxies.values_mut() {
            // One removal per noxious toxic: noxious 1.0.4's `RemoveAllToxics` clears only the
            // upstream list.
            let names: Vec<String> = entry
                .toxics
                .iter()
                .flat_map(Toxic::to_noxious)
                .map(|n| n.name)
                .rev()
                .collect();
            for name in names {
                send_event(entry, ToxicEventKind::RemoveToxic(name)).await?;
            }
            entry.toxics.clear();
            self.set_enabled(entry, true).await?;
        }
        Ok(())
    }

    /// Stop every proxy (server shutdown).
    pub async fn shutdown(&self) {
        let mut proxies = self.proxies.lock().await;
        for entry in proxies.values_mut() {
            stop(entry).await;
        }
    }

    /// `GET /proxies/{name}/toxics`.
    pub async fn toxics(&self, proxy: &str) -> Result<Value, ApiError> {
        let proxies = self.proxies.lock().await;
        let entry = proxies.get(proxy).ok_or(ApiError::ProxyNotFound)?;
        Ok(Value::Array(
            entry.toxics.iter().map(Toxic::to_json).collect(),
        ))
    }

    /// `GET /proxies/{name}/toxics/{toxic}`.
    pub async fn toxic(&self, proxy: &str, toxic: &str) -> Result<Value, ApiError> {
        let proxies = self.proxies.lock().await;
        let entry = proxies.get(proxy).ok_or(ApiError::ProxyNotFound)?;
        Ok(entry.toxics[entry.toxic_index(toxic)?].to_json())
    }

    /// `POST /proxies/{name}/toxics`: add a toxic; live connections get it too.
    pub async fn add_toxic(&self, proxy: &str, req: ToxicRequest) -> Result<Value, ApiError> {
        let mut proxies = self.proxies.lock().await;
        let entry = proxies.get_mut(proxy).ok_or(ApiError::ProxyNotFound)?;
        let toxic = Toxic::from_create(req)?;
        if entry.toxics.iter().any(|t| t.name == toxic.name) {
            return Err(ApiError::ToxicExists);
        }
        for n in toxic.to_noxious() {
            send_event(entry, ToxicEventKind::AddToxic(n)).await?;
        }
        let json = toxic.to_json();
        entry.toxics.push(toxic);
        Ok(json)
    }

    /// `POST /proxies/{name}/toxics/{toxic}`: update attributes and/or toxicity.
    pub async fn update_toxic(
        &self,
        proxy: &str,
        name: &str,
        req: ToxicRequest,
    ) -> Result<Value, ApiError> {
        let mut proxies = self.proxies.lock().await;
        let entry = proxies.get_mut(proxy).ok_or(ApiError::ProxyNotFound)?;
        let idx = entry.toxic_index(name)?;
        let toxic = entry.toxics[idx].updated(req)?;
        for n in toxic.to_noxious() {
            send_event(entry, ToxicEventKind::UpdateToxic(n)).await?;
        }
        let json = toxic.to_json();
        entry.toxics[idx] = toxic;
        Ok(json)
    }

    /// `DELETE /proxies/{name}/toxics/{toxic}`.
    pub async fn remove_toxic(&self, proxy: &str, name: &str) -> Result<(), ApiError> {
        let mut proxies = self.proxies.lock().await;
        let entry = proxies.get_mut(proxy).ok_or(ApiError::ProxyNotFound)?;
        let idx = entry.toxic_index(name)?;
        for n in entry.toxics[idx].to_noxious().into_iter().rev() {
            send_event(entry, ToxicEventKind::RemoveToxic(n.name)).await?;
        }
        entry.toxics.remove(idx);
        Ok(())
    }

    async fn start_new(&self, req: ProxyCreate) -> Result<Entry, ApiError> {
        let mut entry = Entry {
            listen: resolve_listen(&req.listen)?,
            name: req.name,
            upstream: req.upstream,
            toxics: Vec::new(),
            running: None,
        };
        self.set_enabled(&mut entry, req.enabled).await?;
        Ok(entry)
    }

    async fn set_enabled(&self, entry: &mut Entry, enabled: bool) -> Result<(), ApiError> {
        match (enabled, entry.running.is_some()) {
            (true, false) => entry.running = Some(self.start(entry).await?),
            (false, true) => stop(entry).await,
            _ => {}
        }
        Ok(())
    }

    /// Bind the listener and spawn the noxious proxy task with the entry's toxics.
    async fn start(&self, entry: &Entry) -> Result<Running, ApiError> {
        let config = ProxyConfig {
            name: entry.name.clone(),
            listen: entry.listen.clone(),
            upstream: entry.upstream.clone(),
            enabled: true,
            rand_seed: self.seed.map(|s| s ^ name_hash(&entry.name)),
        };
        let mut toxics = Toxics::empty();
        for t in &entry.toxics {
            let list = match t.stream {
                crate::model::Stream::Upstream => &mut toxics.upstream,
                crate::model::Stream::Downstream => &mut toxics.downstream,
            };
            list.extend(t.to_noxious());
        }
        let (listener, info) = ProxyRunner::initialize_proxy::<TcpListener>(config, toxics)
            .await
            .map_err(|source| ApiError::Listen {
                addr: entry.listen.clone(),
                source,
            })?;
        let (events, receiver) = bmrng::channel::<ToxicEvent, ToxicEventResult>(1);
        let (stop, stopper) = Stop::new();
        let (close, closer) = Close::new();
        let name = entry.name.clone();
        tokio::spawn(async move {
            if let Err(err) = ProxyRunner::run_proxy(listener, info, receiver, stop, closer).await {
                tracing::warn!(proxy = %name, %err, "proxy task ended with an error");
            }
        });
        tracing::info!(proxy = %entry.name, listen = %entry.listen, upstream = %entry.upstream, "proxy enabled");
        Ok(Running {
            stopper,
            close,
            events,
        })
    }
}

/// Stop a running proxy: no more accepts, every connection closed. No-op when disabled.
async fn stop(entry: &mut Entry) {
    let Some(running) = entry.running.take() else {
        return;
    };
    running.stopper.stop();
    let wait = tokio::time::timeout(
        Duration::from_millis(PROXY_TASK_TIMEOUT_MS),
        running.close.recv(),
    );
    if wait.await.is_err() {
        tracing::warn!(proxy = %entry.name, "proxy task did not confirm shutdown in time");
    }
    tracing::info!(proxy = %entry.name, "proxy disabled");
}

/// Hand a toxic change to the running proxy task, which rebuilds every live connection's
/// links with the new toxic list. Disabled proxies only change the stored list.
async fn send_event(entry: &Entry, kind: ToxicEventKind) -> Result<(), ApiError> {
    let Some(running) = &entry.running else {
        return Ok(());
    };
    let event = ToxicEvent::new(entry.name.clone(), kind);
    let reply = tokio::time::timeout(
        Duration::from_millis(PROXY_TASK_TIMEOUT_MS),
        running.events.send_receive(event),
    )
    .await
    .map_err(|_| ApiError::Internal("toxic update timed out".into()))?
    .map_err(|e| ApiError::Internal(e.to_string()))?;
    reply.map_err(|e| ApiError::Internal(e.to_string()))
}

/// A listen address with port 0 gets a concrete free port so the API can report it, as
/// Toxiproxy does. (noxious binds by address string and does not expose the bound port, so
/// the port is found by a probe bind first; another process could take it in between, in
/// which case creating the proxy fails with 500 and the caller retries.)
fn resolve_listen(listen: &str) -> Result<String, ApiError> {
    let bad = |e: std::io::Error| ApiError::Listen {
        addr: listen.to_string(),
        source: e,
    };
    let addr: SocketAddr = listen
        .to_socket_addrs()
        .map_err(bad)?
        .next()
        .ok_or_else(|| {
            ApiError::BadRequest(format!("listen address {listen:?} resolves to nothing"))
        })?;
    if addr.port() != 0 {
        return Ok(listen.to_string());
    }
    let probe = StdTcpListener::bind(addr).map_err(bad)?;
    let port = probe.local_addr().map_err(bad)?.port();
    Ok(SocketAddr::new(addr.ip(), port).to_string())
}

/// FNV-1a of the proxy name, to derive per-proxy seeds deterministically.
fn name_hash(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}
