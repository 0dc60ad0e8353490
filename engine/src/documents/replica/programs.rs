//! The peer's open document programs: one [`crate::Protocol::DOCUMENTS`] inbox, handed out by
//! program address to each program's driver (waiting while a driver is behind, so nothing is
//! lost and the senders slow down).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use tokio::sync::mpsc;

use super::wire::Wire;
use crate::program::ProgramAddress;
use crate::router::{PROTOCOL_INBOX, Routed};

/// Open document programs by address.
#[derive(Debug, Default)]
pub(crate) struct Programs {
    open: Mutex<HashMap<ProgramAddress, mpsc::Sender<Routed>>>,
    /// Messages for programs not open here, or malformed.
    unknown: AtomicU64,
}

impl Programs {
    /// A program's inbox; `None` if it is open already (and its replica alive).
    pub(crate) fn register(&self, program: ProgramAddress) -> Option<mpsc::Receiver<Routed>> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if open.get(&program).is_some_and(|tx| !tx.is_closed()) {
            return None;
        }
        let (tx, rx) = mpsc::channel(PROTOCOL_INBOX);
        open.insert(program, tx);
        Some(rx)
    }

    /// Messages dropped because no open program took them.
    pub(crate) fn unknown(&self) -> u64 {
        self.unknown.load(Ordering::Relaxed)
    }

    /// Hands every message of the documents protocol to its program until the peer stops.
    pub(crate) async fn serve(self: std::sync::Arc<Self>, mut inbox: mpsc::Receiver<Routed>) {
        while let Some(msg) = inbox.recv().await {
            let Ok((program, _)) = Wire::program_of(&msg.body) else {
                self.unknown.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            let tx = {
                let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
                match open.get(&program) {
                    Some(tx) if tx.is_closed() => {
                        open.remove(&program);
                        None
                    }
                    other => other.cloned(),
                }
            };
            match tx {
                Some(tx) => {
                    if tx.send(msg).await.is_err() {
                        self.unknown.fetch_add(1, Ordering::Relaxed);
                    }
                }
                None => {
                    self.unknown.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}
