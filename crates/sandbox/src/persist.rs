//! The `--state FILE` persistence. Owns a background writer thread that
//! snapshots the sandbox and writes it atomically (temp file + rename), and
//! the generation handshake that lets a request wait until its own change is
//! on disk before answering. Bursts of changes coalesce into one write.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

use tokio::sync::watch;

use crate::sandbox::Sandbox;

/// Locks ignoring poisoning (a panicked holder must not wedge the server).
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

struct Shared {
    /// (requested generation, stop flag)
    requested: Mutex<(u64, bool)>,
    wake: Condvar,
    written: watch::Sender<u64>,
}

pub struct Persister {
    shared: Arc<Shared>,
    written: watch::Receiver<u64>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Persister {
    pub fn start(path: PathBuf, state: Arc<Mutex<Sandbox>>) -> Self {
        let (tx, rx) = watch::channel(0);
        let shared = Arc::new(Shared {
            requested: Mutex::new((0, false)),
            wake: Condvar::new(),
            written: tx,
        });
        let worker = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("sandbox-state-writer".into())
            .spawn(move || writer(&path, &state, &worker))
            .ok();
        if thread.is_none() {
            eprintln!("sandbox: could not start the state writer thread; state will not be saved");
        }
        Self {
            shared,
            written: rx,
            thread: Mutex::new(thread),
        }
    }

    /// Asks for a write of the current state; returns its generation.
    pub fn request(&self) -> u64 {
        let mut g = lock(&self.shared.requested);
        g.0 += 1;
        self.shared.wake.notify_one();
        g.0
    }

    /// Resolves once generation `gen` (or a later one) has been written.
    pub async fn wait(&self, gen: u64) {
        if lock(&self.thread).is_none() {
            return;
        }
        let mut rx = self.written.clone();
        let _ = rx.wait_for(|w| *w >= gen).await;
    }

    /// Writes anything pending, then stops the writer thread.
    pub fn shutdown(&self) {
        {
            let mut g = lock(&self.shared.requested);
            g.1 = true;
            self.shared.wake.notify_one();
        }
        if let Some(t) = lock(&self.thread).take() {
            let _ = t.join();
        }
    }
}

fn writer(path: &Path, state: &Mutex<Sandbox>, shared: &Shared) {
    let mut written = 0;
    loop {
        let target = {
            let mut g = lock(&shared.requested);
            loop {
                if g.0 > written {
                    break g.0;
                }
                if g.1 {
                    return;
                }
                g = shared.wake.wait(g).unwrap_or_else(PoisonError::into_inner);
            }
        };
        let snapshot = lock(state).snapshot();
        match snapshot {
            Ok(bytes) => {
                if let Err(e) = write_atomic(path, &bytes) {
                    eprintln!("sandbox: cannot write state file {}: {e}", path.display());
                }
            }
            Err(e) => eprintln!("sandbox: cannot serialise state: {e}"),
        }
        written = target;
        shared.written.send_replace(target);
    }
}

pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}
