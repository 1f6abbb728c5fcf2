//! `plumgate-sandbox` binary: parses the CLI, binds, prints the ready line,
//! serves until SIGTERM/SIGINT, then flushes the state file and exits 0.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use plumgate_sandbox::{bind, Options};

const USAGE: &str = "\
usage: plumgate-sandbox [--host 127.0.0.1] [--port 8788] [--state FILE]
                        [--client-id ID] [--client-secret S]
                        [--refresh-token RT] [--access-token AT] [--quiet]

Imitates the Xoxoday Plum Reward API under /chef and offers test controls
under /__sandbox. --port 0 picks a free port. Prints
`SANDBOX_READY http://HOST:PORT` once listening.";

fn parse_args(args: impl Iterator<Item = String>) -> Result<Options, String> {
    let mut o = Options::default();
    let mut args = args.peekable();
    while let Some(arg) = args.next() {
        if arg == "-h" || arg == "--help" {
            return Err(String::new());
        }
        if arg == "--quiet" {
            o.log = false;
            continue;
        }
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
            _ => (arg.clone(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--host" => o.host = value()?,
            "--port" => {
                o.port = value()?
                    .parse()
                    .map_err(|_| "--port must be 0..65535".to_owned())?
            }
            "--state" => o.state = Some(PathBuf::from(value()?)),
            "--client-id" => o.credentials.client_id = value()?,
            "--client-secret" => o.credentials.client_secret = value()?,
            "--refresh-token" => o.credentials.refresh_token = value()?,
            "--access-token" => o.credentials.access_token = value()?,
            _ => return Err(format!("unknown argument {arg:?}")),
        }
    }
    Ok(o)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

fn main() -> ExitCode {
    let opts = match parse_args(std::env::args().skip(1)) {
        Ok(o) => o,
        Err(e) if e.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("plumgate-sandbox: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("plumgate-sandbox: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let server = match bind(&opts).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("plumgate-sandbox: {e}");
                return ExitCode::FAILURE;
            }
        };
        let app = std::sync::Arc::clone(&server.app);
        {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "SANDBOX_READY {}", server.url());
            let _ = out.flush();
        }
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let serving = tokio::spawn(server.run(async {
            let _ = stop_rx.await;
        }));
        shutdown_signal().await;
        eprintln!("plumgate-sandbox: shutting down");
        let _ = stop_tx.send(());
        // In-flight requests (e.g. an injected 30 s hang) get one second.
        let _ = tokio::time::timeout(Duration::from_secs(1), serving).await;
        app.shutdown();
        ExitCode::SUCCESS
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Result<Options, String> {
        parse_args(v.iter().map(|s| (*s).to_owned()))
    }

    #[test]
    fn cli_flags() {
        let o = args(&[
            "--port",
            "0",
            "--host=127.0.0.1",
            "--state",
            "/tmp/x.json",
            "--client-id",
            "c",
            "--quiet",
        ])
        .unwrap();
        assert_eq!(o.port, 0);
        assert_eq!(o.state, Some(PathBuf::from("/tmp/x.json")));
        assert_eq!(o.credentials.client_id, "c");
        assert_eq!(o.credentials.client_secret, "plumgate-dev-secret");
        assert!(!o.log);
        assert!(args(&["--port"]).is_err());
        assert!(args(&["--port", "99999"]).is_err());
        assert!(args(&["--bogus"]).is_err());
        assert_eq!(args(&["--help"]).unwrap_err(), "");
    }
}
