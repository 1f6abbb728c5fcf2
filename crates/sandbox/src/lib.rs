//! plumgate-sandbox: a local imitation of the Xoxoday Plum Reward API for
//! plumgate's dev setup and end-to-end tests.
//!
//! Module map:
//! - [`sandbox`]: the whole behaviour as a plain value (no I/O), tested directly
//! - [`tokens`], [`catalog`], [`orders`], [`ratelimit`], [`faults`], [`config`]:
//!   its parts
//! - [`plum`]: upstream response/error shapes and lenient input readers
//! - [`clock`]: time reading and date formats
//! - [`http`]: the axum routes; [`persist`]: the `--state` file writer
//! - this file: options, start-up (state loading, binding) and serving

#![recursion_limit = "256"]

pub mod catalog;
pub mod clock;
pub mod config;
pub mod faults;
pub mod http;
pub mod orders;
pub mod persist;
pub mod plum;
pub mod ratelimit;
pub mod sandbox;
pub mod tokens;

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use tokio::net::TcpListener;

pub use crate::http::App;
pub use crate::sandbox::{Credentials, Sandbox};

/// Start-up options (the CLI flags).
#[derive(Debug, Clone)]
pub struct Options {
    pub host: String,
    pub port: u16,
    pub state: Option<PathBuf>,
    pub credentials: Credentials,
    /// One stderr line per request.
    pub log: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: 8788,
            state: None,
            credentials: Credentials::default(),
            log: true,
        }
    }
}

/// A bound, not yet serving, sandbox.
pub struct Server {
    pub addr: SocketAddr,
    pub app: Arc<App>,
    listener: TcpListener,
}

/// Loads the state file (if any), binds the listener and builds the app.
pub async fn bind(opts: &Options) -> Result<Server, String> {
    let wall = clock::wall_ms();
    let loaded = match &opts.state {
        Some(path) if path.exists() => {
            let bytes = std::fs::read(path)
                .map_err(|e| format!("cannot read state file {}: {e}", path.display()))?;
            let state = Sandbox::parse_state(&bytes).map_err(|e| {
                format!(
                    "state file {} is not valid sandbox state: {e}",
                    path.display()
                )
            })?;
            Some(Sandbox::from_state(opts.credentials.clone(), state))
        }
        _ => None,
    };
    let fresh_state_file = loaded.is_none() && opts.state.is_some();
    let mut sandbox = loaded.unwrap_or_else(|| Sandbox::new(opts.credentials.clone(), wall));

    let listener = TcpListener::bind((opts.host.as_str(), opts.port))
        .await
        .map_err(|e| format!("cannot listen on {}:{}: {e}", opts.host, opts.port))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let public_ip = if addr.ip().is_unspecified() {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        addr.ip()
    };
    sandbox.set_asset_base(format!(
        "http://{}",
        SocketAddr::new(public_ip, addr.port())
    ));

    let app = App::new(sandbox, opts.state.clone(), opts.log);
    if fresh_state_file {
        app.save_now().await;
    }
    Ok(Server {
        addr,
        app,
        listener,
    })
}

impl Server {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Serves until `shutdown` resolves, then stops accepting and lets
    /// in-flight requests finish (the caller bounds how long it waits).
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let router = http::router(Arc::clone(&self.app));
        axum::serve(self.listener, router)
            .with_graceful_shutdown(shutdown)
            .await
    }
}
