//! The etcd v3 client as the fleet uses it: list and watch the routing records, write them in
//! one transaction, publish a host's status under a lease.
//!
//! Every call but the watch has a deadline, so an unreachable store is an error after
//! [`StoreConfig::request_timeout`], never a hang. HTTP/2 keep-alives detect a partitioned
//! store on an idle watch.

use std::time::Duration;

use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, GetOptions, PutOptions, Txn, TxnOp, WatchOptions,
    WatchStream,
};

use crate::schema::{CONFIG_DIR, STATUS_DIR};

/// Where the store is and how long to wait for it.
#[derive(Clone, Debug)]
pub struct StoreConfig {
    /// `http://host:port` URLs of the etcd members.
    pub endpoints: Vec<String>,
    /// The key space's prefix, ending in `/`.
    pub prefix: String,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    /// HTTP/2 keep-alive interval (a dead connection is noticed within about twice this).
    pub keep_alive: Duration,
    /// TLS for `https://` endpoints.
    pub tls: Option<TlsFiles>,
}

/// The PEM files of a TLS client: the CA that signed the servers' certificates, and this
/// client's certificate and key when the servers ask for one (`--client-cert-auth`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    pub ca: std::path::PathBuf,
    pub identity: Option<(std::path::PathBuf, std::path::PathBuf)>,
}

impl TlsFiles {
    /// The client's TLS settings, read from the files.
    fn options(&self) -> Result<etcd_client::TlsOptions, StoreError> {
        let read = |p: &std::path::Path| {
            std::fs::read(p).map_err(|e| StoreError::Tls(format!("{}: {e}", p.display())))
        };
        let mut tls = etcd_client::TlsOptions::new()
            .ca_certificate(etcd_client::Certificate::from_pem(read(&self.ca)?));
        if let Some((cert, key)) = &self.identity {
            tls = tls.identity(etcd_client::Identity::from_pem(read(cert)?, read(key)?));
        }
        Ok(tls)
    }
}

impl StoreConfig {
    pub fn new(endpoints: Vec<String>, prefix: &str) -> Self {
        StoreConfig {
            endpoints,
            prefix: normalise_prefix(prefix),
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(5),
            keep_alive: Duration::from_secs(1),
            tls: None,
        }
    }
}

/// A prefix that ends in exactly one `/`.
pub fn normalise_prefix(prefix: &str) -> String {
    format!("{}/", prefix.trim_end_matches('/'))
}

/// Why the store could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("etcd at {endpoints}: {}", brief(source))]
    Etcd {
        endpoints: String,
        source: etcd_client::Error,
    },
    #[error("etcd at {0}: no answer within {1:?}")]
    Timeout(String, Duration),
    #[error("etcd watch ended: {0}")]
    WatchEnded(String),
    #[error("TLS: {0}")]
    Tls(String),
}

/// A client error in one line: the gRPC status or the error itself, and its innermost cause
/// (`Connection refused`, `broken pipe`) when that says more; the whole chain is a paragraph.
fn brief(e: &etcd_client::Error) -> String {
    let (outer, first): (String, &dyn std::error::Error) = match e {
        etcd_client::Error::GRpcStatus(status) => (status.message().to_string(), status),
        other => (other.to_string(), other),
    };
    let mut cause = None;
    let mut next = first.source();
    while let Some(c) = next {
        cause = Some(c);
        next = c.source();
    }
    let inner = cause.map(|c| c.to_string()).unwrap_or_default();
    let line = if inner.is_empty() || outer.contains(&inner) {
        outer
    } else {
        format!("{outer} ({inner})")
    };
    if line.chars().count() > 200 {
        let cut: String = line.chars().take(197).collect();
        return format!("{cut}...");
    }
    line
}

/// A key and value read from the store, with the revision that last changed it.
#[derive(Clone, Debug)]
pub struct Entry {
    /// Relative to the directory listed.
    pub key: String,
    pub value: Vec<u8>,
    pub mod_revision: i64,
}

/// A connected client.
pub struct Store {
    client: Client,
    cfg: StoreConfig,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("cfg", &self.cfg).finish()
    }
}

impl Store {
    pub async fn connect(cfg: &StoreConfig) -> Result<Store, StoreError> {
        let mut opts = ConnectOptions::new()
            .with_connect_timeout(cfg.connect_timeout)
            .with_keep_alive(cfg.keep_alive, cfg.keep_alive)
            .with_keep_alive_while_idle(true);
        if let Some(tls) = &cfg.tls {
            opts = opts.with_tls(tls.options()?);
        }
        let client = bounded(cfg, Client::connect(&cfg.endpoints, Some(opts))).await?;
        let store = Store {
            client,
            cfg: cfg.clone(),
        };
        // Connecting is lazy: ask for something so that an unreachable store fails here.
        let mut kv = store.client.kv_client();
        let probe = GetOptions::new().with_count_only();
        bounded(cfg, kv.get(store.config_dir(), Some(probe))).await?;
        Ok(store)
    }

    pub fn config(&self) -> &StoreConfig {
        &self.cfg
    }

    /// `<prefix>config/`.
    pub fn config_dir(&self) -> String {
        format!("{}{CONFIG_DIR}", self.cfg.prefix)
    }

    /// `<prefix>status/`.
    pub fn status_dir(&self) -> String {
        format!("{}{STATUS_DIR}", self.cfg.prefix)
    }

    /// Every key under `dir` (relative to it), and the store's revision of the read.
    pub async fn list(&mut self, dir: &str) -> Result<(i64, Vec<Entry>), StoreError> {
        let mut kv = self.client.kv_client();
        let resp = bounded(
            &self.cfg,
            kv.get(dir, Some(GetOptions::new().with_prefix())),
        )
        .await?;
        let revision = resp.header().map_or(0, |h| h.revision());
        let entries = resp
            .kvs()
            .iter()
            .map(|kv| Entry {
                key: String::from_utf8_lossy(&kv.key()[dir.len().min(kv.key().len())..])
                    .into_owned(),
                value: kv.value().to_vec(),
                mod_revision: kv.mod_revision(),
            })
            .collect();
        Ok((revision, entries))
    }

    /// Watches every key under `<prefix>config/` from `revision` on.
    pub async fn watch_config(&mut self, revision: i64) -> Result<WatchStream, StoreError> {
        let opts = WatchOptions::new()
            .with_prefix()
            .with_start_revision(revision)
            .with_progress_notify();
        let dir = self.config_dir();
        let mut w = self.client.watch_client();
        bounded(&self.cfg, w.watch(dir, Some(opts))).await
    }

    /// Writes `puts` and `deletes` (full keys) in one transaction if every key of `expect`
    /// still has the given mod revision (0: absent). Returns the revision written, or `None`
    /// when another writer got there first.
    pub async fn write(
        &mut self,
        expect: &[(String, i64)],
        puts: &[(String, String)],
        deletes: &[String],
    ) -> Result<Option<i64>, StoreError> {
        let compares: Vec<Compare> = expect
            .iter()
            .map(|(k, rev)| Compare::mod_revision(k.as_str(), CompareOp::Equal, *rev))
            .collect();
        let ops: Vec<TxnOp> = puts
            .iter()
            .map(|(k, v)| TxnOp::put(k.as_str(), v.as_str(), None))
            .chain(deletes.iter().map(|k| TxnOp::delete(k.as_str(), None)))
            .collect();
        let txn = Txn::new().when(compares).and_then(ops);
        let mut kv = self.client.kv_client();
        let resp = bounded(&self.cfg, kv.txn(txn)).await?;
        Ok(resp
            .succeeded()
            .then(|| resp.header().map_or(0, |h| h.revision())))
    }

    /// A lease of `ttl`, returned with its id.
    pub async fn grant(&mut self, ttl: Duration) -> Result<i64, StoreError> {
        let mut lease = self.client.lease_client();
        let secs = i64::try_from(ttl.as_secs().max(2)).unwrap_or(i64::MAX);
        Ok(bounded(&self.cfg, lease.grant(secs, None)).await?.id())
    }

    /// Refreshes a lease; false if it expired.
    pub async fn keep_alive(&mut self, lease: i64) -> Result<bool, StoreError> {
        let mut client = self.client.lease_client();
        let (mut keeper, mut stream) = bounded(&self.cfg, client.keep_alive(lease)).await?;
        bounded(&self.cfg, keeper.keep_alive()).await?;
        let resp = bounded(&self.cfg, stream.message()).await?;
        Ok(resp.is_some_and(|r| r.ttl() > 0))
    }

    /// Puts `value` under `<prefix>status/<host>`, attached to `lease`.
    pub async fn put_status(
        &mut self,
        host: &str,
        value: String,
        lease: i64,
    ) -> Result<(), StoreError> {
        let key = format!("{}{host}", self.status_dir());
        let mut kv = self.client.kv_client();
        let opts = PutOptions::new().with_lease(lease);
        bounded(&self.cfg, kv.put(key, value, Some(opts))).await?;
        Ok(())
    }

    /// Compacts the store's history up to `revision` (tests and benchmarks).
    pub async fn compact(&mut self, revision: i64) -> Result<(), StoreError> {
        let mut kv = self.client.kv_client();
        bounded(&self.cfg, kv.compact(revision, None)).await?;
        Ok(())
    }
}

/// Runs `call` with the request deadline.
async fn bounded<T>(
    cfg: &StoreConfig,
    call: impl std::future::Future<Output = Result<T, etcd_client::Error>>,
) -> Result<T, StoreError> {
    let endpoints = || cfg.endpoints.join(",");
    match tokio::time::timeout(cfg.request_timeout, call).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(source)) => Err(StoreError::Etcd {
            endpoints: endpoints(),
            source,
        }),
        Err(_) => Err(StoreError::Timeout(endpoints(), cfg.request_timeout)),
    }
}
