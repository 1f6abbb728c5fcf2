//! `plumgate-sandbox` binary: parses the CLI, binds, prints the ready line,
//! serves until SIGTERM/SIGINT, then flushes the state file and exits 0.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use plumgate_sandbox::{bind, Credentials, Options};

// Defaults come from `Options::default()` and `Credentials::default()`, so
// the library and the command line cannot disagree. A flag given twice keeps
// its last value, and a value may start with `-` (`--client-secret -x`).

/// Imitates the Xoxoday Plum Reward API under /chef and offers test controls
/// under /__sandbox. Prints `SANDBOX_READY http://HOST:PORT` once listening.
#[derive(Debug, Parser)]
#[command(name = "plumgate-sandbox", args_override_self = true)]
struct Cli {
    /// Address to bind.
    #[arg(long, value_name = "HOST", allow_hyphen_values = true,
          default_value_t = Options::default().host)]
    host: String,
    /// Port to bind; 0 picks a free port.
    #[arg(long, value_name = "PORT", default_value_t = Options::default().port)]
    port: u16,
    /// Keep config, tokens, wallet and orders in this JSON file (loaded at
    /// start if it exists, then it wins over the bootstrap flags).
    #[arg(long, value_name = "FILE", allow_hyphen_values = true)]
    state: Option<PathBuf>,
    /// Client id the refresh endpoint accepts.
    #[arg(long, value_name = "ID", allow_hyphen_values = true,
          default_value_t = Credentials::default().client_id)]
    client_id: String,
    /// Client secret the refresh endpoint accepts.
    #[arg(long, value_name = "S", allow_hyphen_values = true,
          default_value_t = Credentials::default().client_secret)]
    client_secret: String,
    /// Bootstrap refresh token, valid on a fresh start and after a reset.
    #[arg(long, value_name = "RT", allow_hyphen_values = true,
          default_value_t = Credentials::default().refresh_token)]
    refresh_token: String,
    /// Bootstrap access token, valid on a fresh start and after a reset.
    #[arg(long, value_name = "AT", allow_hyphen_values = true,
          default_value_t = Credentials::default().access_token)]
    access_token: String,
    /// No per-request stderr line.
    #[arg(long)]
    quiet: bool,
}

impl From<Cli> for Options {
    fn from(c: Cli) -> Self {
        Options {
            host: c.host,
            port: c.port,
            state: c.state,
            credentials: Credentials {
                client_id: c.client_id,
                client_secret: c.client_secret,
                refresh_token: c.refresh_token,
                access_token: c.access_token,
            },
            log: !c.quiet,
        }
    }
}

/// Installs the SIGTERM and SIGINT handlers now and returns a future that
/// resolves on the first of them. Called before the ready line is printed:
/// a stop sent the moment that line appears would otherwise meet the default
/// action, and the process would die without flushing the state file.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, Signal, SignalKind};
        async fn recv(s: Option<&mut Signal>) {
            match s {
                Some(s) => {
                    s.recv().await;
                }
                // A handler that could not be installed never fires.
                None => std::future::pending().await,
            }
        }
        let mut term = signal(SignalKind::terminate()).ok();
        let mut int = signal(SignalKind::interrupt()).ok();
        async move {
            tokio::select! {
                () = recv(term.as_mut()) => {}
                () = recv(int.as_mut()) => {}
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn main() -> ExitCode {
    // `--help` prints to stdout and exits 0; a bad command line prints the
    // error and usage to stderr and exits 2.
    let opts = Options::from(Cli::parse());
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
        let stop = shutdown_signal();
        {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "SANDBOX_READY {}", server.url());
            let _ = out.flush();
        }
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let serving = tokio::spawn(server.run(async {
            let _ = stop_rx.await;
        }));
        stop.await;
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
    use clap::error::ErrorKind;

    fn args(v: &[&str]) -> Result<Options, clap::Error> {
        Cli::try_parse_from(std::iter::once("plumgate-sandbox").chain(v.iter().copied()))
            .map(Options::from)
    }

    fn err(v: &[&str]) -> ErrorKind {
        args(v).expect_err("rejected").kind()
    }

    #[test]
    fn the_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn defaults_are_the_library_defaults() {
        let o = args(&[]).unwrap();
        let d = Options::default();
        assert_eq!(o.host, "127.0.0.1");
        assert_eq!(o.port, 8788);
        assert_eq!(
            (o.host, o.port, o.state, o.log),
            (d.host, d.port, d.state, d.log)
        );
        assert_eq!(o.credentials, Credentials::default());
        assert_eq!(o.credentials.client_id, "plumgate-dev-client");
        assert_eq!(o.credentials.client_secret, "plumgate-dev-secret");
        assert_eq!(o.credentials.refresh_token, "plumgate-dev-refresh-token");
        assert_eq!(o.credentials.access_token, "plumgate-dev-access-token");
        assert!(o.log);
    }

    #[test]
    fn every_flag_separate_value() {
        let o = args(&[
            "--host",
            "0.0.0.0",
            "--port",
            "0",
            "--state",
            "/tmp/x.json",
            "--client-id",
            "c",
            "--client-secret",
            "s",
            "--refresh-token",
            "rt",
            "--access-token",
            "at",
            "--quiet",
        ])
        .unwrap();
        assert_eq!(o.host, "0.0.0.0");
        assert_eq!(o.port, 0);
        assert_eq!(o.state, Some(PathBuf::from("/tmp/x.json")));
        assert_eq!(
            o.credentials,
            Credentials {
                client_id: "c".into(),
                client_secret: "s".into(),
                refresh_token: "rt".into(),
                access_token: "at".into(),
            }
        );
        assert!(!o.log);
    }

    #[test]
    fn every_flag_inline_value() {
        let o = args(&[
            "--host=127.0.0.2",
            "--port=65535",
            "--state=s.json",
            "--client-id=c=1",
            "--client-secret=",
            "--refresh-token=rt",
            "--access-token=at",
        ])
        .unwrap();
        assert_eq!(o.host, "127.0.0.2");
        assert_eq!(o.port, 65535);
        assert_eq!(o.state, Some(PathBuf::from("s.json")));
        // Only the first `=` splits; an empty value is a value.
        assert_eq!(o.credentials.client_id, "c=1");
        assert_eq!(o.credentials.client_secret, "");
        assert_eq!(o.credentials.refresh_token, "rt");
        assert_eq!(o.credentials.access_token, "at");
        assert!(o.log);
        // The rest keep their defaults.
        let o = args(&["--client-id", "c"]).unwrap();
        assert_eq!(o.credentials.client_secret, "plumgate-dev-secret");
        assert_eq!(o.state, None);
    }

    #[test]
    fn last_value_wins_and_values_may_start_with_a_dash() {
        let o = args(&["--port", "1", "--port", "2", "--quiet", "--quiet"]).unwrap();
        assert_eq!(o.port, 2);
        assert!(!o.log);
        let o = args(&["--client-secret", "-s3cret", "--refresh-token", "--rt"]).unwrap();
        assert_eq!(o.credentials.client_secret, "-s3cret");
        assert_eq!(o.credentials.refresh_token, "--rt");
    }

    #[test]
    fn bad_command_lines_are_rejected() {
        assert_eq!(err(&["--port"]), ErrorKind::InvalidValue);
        assert_eq!(err(&["--client-id"]), ErrorKind::InvalidValue);
        assert_eq!(err(&["--port", "99999"]), ErrorKind::ValueValidation);
        assert_eq!(err(&["--port", "-1"]), ErrorKind::UnknownArgument);
        assert_eq!(err(&["--port", "x"]), ErrorKind::ValueValidation);
        assert_eq!(err(&["--bogus"]), ErrorKind::UnknownArgument);
        assert_eq!(err(&["stray"]), ErrorKind::UnknownArgument);
        assert_eq!(err(&["--quiet=yes"]), ErrorKind::TooManyValues);
        // Exit code 2 for usage errors, as before.
        assert_eq!(args(&["--bogus"]).unwrap_err().exit_code(), 2);
    }

    #[test]
    fn help_lists_every_flag_and_exits_zero() {
        for flag in ["--help", "-h"] {
            let e = args(&[flag]).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::DisplayHelp);
            assert_eq!(e.exit_code(), 0);
            let text = e.to_string();
            for name in [
                "--host",
                "--port",
                "--state",
                "--client-id",
                "--client-secret",
                "--refresh-token",
                "--access-token",
                "--quiet",
                "SANDBOX_READY",
            ] {
                assert!(text.contains(name), "{name} in help:\n{text}");
            }
            assert!(text.contains("[default: 8788]"), "{text}");
        }
    }
}
