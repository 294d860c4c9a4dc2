//! The front door of the MQTT listener: how many connections may wait *before* they have
//! authenticated, and the open-files budget of the process.
//!
//! A connection goes through two stages:
//!
//! 1. **Pending** — TCP accepted, TLS handshake not yet done. It holds a slot of the
//!    [`PendingGate`]: at most [`Limits::max_pending`] in all and
//!    [`Limits::max_pending_per_address`] per source IP address, for at most
//!    [`Limits::tls_handshake_timeout`]. When a bound is reached the *oldest* pending
//!    connection (of that address, or of all when the global pool is full) is closed and the new
//!    one admitted. Refusing the newcomer instead would let a flood that refreshes its sockets
//!    faster than the handshake deadline hold every slot for ever; evicting the oldest means a
//!    flood only ever competes with itself, and a legitimate device needs only its own
//!    handshake time (milliseconds) to get through.
//! 2. **Authenticated** — the TLS handshake verified the client certificate (chain to a fleet CA,
//!    not in a CRL). Only now does the connection take one of `max_connections`, and it keeps it
//!    until it ends; it then has [`Limits::connect_timeout`] to send CONNECT. We count at TLS
//!    rather than at CONNECT because the certificate is what makes a connection accountable: a
//!    holder of a valid certificate who then stays silent is identifiable and revocable, while
//!    anyone on the network can open sockets. When `max_connections` is reached, a newly
//!    authenticated connection is closed (devices retry with back-off).
//!
//! Deadlines (AWS IoT Core documents none for the handshake; these are sound for devices on
//! cellular links with a software TLS stack): TLS handshake 5 s, CONNECT after the handshake 5 s
//! (both `[limits]` keys, in seconds: `tls_handshake_timeout`, `connect_timeout`).

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

#[cfg(doc)]
use crate::broker::Limits;

/// Open files kept free beyond the connections: the database, firmware files, the HTTP API,
/// log files, the listener sockets.
pub const FD_MARGIN: u64 = 64;

#[derive(Default)]
struct Pending {
    next: u64,
    /// Admission order → (source address, the eviction signal: dropping it closes the
    /// connection).
    slots: BTreeMap<u64, (IpAddr, oneshot::Sender<()>)>,
    per_address: HashMap<IpAddr, usize>,
}

impl Pending {
    fn remove(&mut self, seq: u64) {
        if let Some((ip, _tx)) = self.slots.remove(&seq)
            && let Some(n) = self.per_address.get_mut(&ip)
        {
            *n -= 1;
            if *n == 0 {
                self.per_address.remove(&ip);
            }
        }
    }
}

/// Bounds the connections that have not authenticated yet (see the module docs).
#[derive(Clone)]
pub struct PendingGate {
    max: usize,
    max_per_address: usize,
    inner: Arc<Mutex<Pending>>,
}

/// A pending connection's slot. Dropping it frees the slot; [`PendingSlot::evicted`] resolves
/// when the gate closed the connection to make room for a newer one.
pub struct PendingSlot {
    seq: u64,
    inner: Arc<Mutex<Pending>>,
    evicted: oneshot::Receiver<()>,
}

impl PendingSlot {
    /// Resolves when this connection was evicted (never, while it keeps its slot).
    pub async fn evicted(&mut self) {
        let _ = (&mut self.evicted).await;
    }
}

impl Drop for PendingSlot {
    fn drop(&mut self) {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(self.seq);
    }
}

impl PendingGate {
    /// A gate for at most `max` pending connections, `max_per_address` from one IP address
    /// (both at least 1).
    pub fn new(max: usize, max_per_address: usize) -> Self {
        PendingGate {
            max: max.max(1),
            max_per_address: max_per_address.max(1),
            inner: Arc::default(),
        }
    }

    /// Admits a new connection from `ip`, evicting the oldest pending one of the same address
    /// when that address is at its bound, else the oldest of all when the pool is full.
    /// Returns the slot and whether a connection was evicted.
    pub fn admit(&self, ip: IpAddr) -> (PendingSlot, bool) {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let mut evicted = false;
        if g.per_address.get(&ip).copied().unwrap_or(0) >= self.max_per_address {
            let oldest = g.slots.iter().find(|(_, (a, _))| *a == ip).map(|(s, _)| *s);
            if let Some(s) = oldest {
                g.remove(s);
                evicted = true;
            }
        }
        if g.slots.len() >= self.max
            && let Some(s) = g.slots.keys().next().copied()
        {
            g.remove(s);
            evicted = true;
        }
        let seq = g.next;
        g.next += 1;
        let (tx, rx) = oneshot::channel();
        g.slots.insert(seq, (ip, tx));
        *g.per_address.entry(ip).or_insert(0) += 1;
        (
            PendingSlot {
                seq,
                inner: self.inner.clone(),
                evicted: rx,
            },
            evicted,
        )
    }

    /// Connections pending now.
    pub fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .slots
            .len()
    }

    /// Whether no connection is pending.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Raises the soft open-files limit (RLIMIT_NOFILE) to the hard limit and returns the new soft
/// limit, warning when `needed` open files (connections plus pending plus [`FD_MARGIN`]) do not
/// fit: the server would then fail accepts with "Too many open files" below its configured
/// `max_connections`. Not an error: the operator may want a small server on a small limit.
/// `None` where the platform has no such limit (or it could not be read).
pub fn raise_open_files(needed: u64) -> Option<u64> {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => {
            if needed > limit {
                tracing::warn!(
                    limit,
                    needed,
                    "open-files limit too low for max_connections + max_pending connections \
                     (+{FD_MARGIN}): raise the hard limit (ulimit -Hn, LimitNOFILE=) or lower \
                     max_connections"
                );
            } else {
                tracing::debug!(limit, needed, "open-files limit");
            }
            Some(limit)
        }
        Err(e) => {
            tracing::warn!(error = %e, "could not raise the open-files limit");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, n])
    }

    #[tokio::test]
    async fn a_full_pool_evicts_its_oldest_and_an_address_its_own_oldest() {
        let g = PendingGate::new(3, 2);
        let (mut a1, e) = g.admit(ip(1));
        assert!(!e);
        let (mut a2, _) = g.admit(ip(1));
        // Address 1 is at its bound: its oldest goes, not someone else's.
        let (_a3, e) = g.admit(ip(1));
        assert!(e);
        a1.evicted().await;
        assert_eq!(g.len(), 2);
        let (mut b1, e) = g.admit(ip(2));
        assert!(!e);
        assert_eq!(g.len(), 3);
        // The pool is full: the oldest of all (a2) goes.
        let (_c1, e) = g.admit(ip(3));
        assert!(e);
        a2.evicted().await;
        assert_eq!(g.len(), 3);
        // b1 still holds its slot.
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(20), b1.evicted())
                .await
                .is_err()
        );
        drop(b1);
        assert_eq!(g.len(), 2);
    }

    #[test]
    fn the_open_files_limit_is_raised_to_the_hard_limit() {
        if let Some(l) = raise_open_files(0) {
            let (soft, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE).unwrap();
            assert_eq!(soft, l);
            assert!(soft <= hard);
        }
    }
}
