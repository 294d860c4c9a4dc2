//! The board's network for the live OTA agent (issue #21): LAN9118 Ethernet on QEMU's
//! `mps2-an500`, TCP/IPv4, TLS 1.3 with the thing's client certificate, MQTT 3.1.1.
//!
//! Skeleton: the API of the shared contract; the bodies come next.

#![no_std]
#![warn(missing_docs)]

pub mod lan9118;

use ferrota_qemu_harness::provision::Provision;

/// Why a network operation failed (`Copy`, no strings: the caller prints its name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetError {
    /// The Ethernet controller is missing or did not come up.
    Phy,
    /// The provisioning block's key or certificates are unusable.
    Provision,
    /// The deadline passed.
    Timeout,
    /// The TCP connection failed or was closed by the peer.
    Tcp,
    /// The TLS handshake or a record failed (includes a server certificate that does not check).
    Tls,
    /// The server refused the MQTT CONNECT (CONNACK return code not 0).
    Refused,
    /// A malformed or unexpected MQTT packet.
    Mqtt,
    /// Not connected (call [`Link::connect`] first).
    NotConnected,
    /// A topic or payload does not fit the buffers, or too many acknowledgements are pending.
    TooLarge,
}

/// Every buffer of the network stack, so a caller can place it (a `static` or its stack).
///
/// The lifetime is that of the [`Link`] built on it: smoltcp's socket set and the TLS
/// connection borrow these buffers without a heap, so the storage holds them for the link's
/// whole life (`Link::new(&'s mut Storage<'s>, ..)`; a `static` is a `Storage<'static>`).
/// One storage serves one link: a new session after [`Link::close`] (or a failed
/// [`Link::connect`]) needs a new storage, or a reset.
pub struct Storage<'s> {
    _placeholder: [u8; 1],
    _borrows: core::marker::PhantomData<&'s mut [u8]>,
}

impl Storage<'_> {
    /// Empty buffers.
    pub const fn new() -> Self {
        Storage {
            _placeholder: [0; 1],
            _borrows: core::marker::PhantomData,
        }
    }
}

impl Default for Storage<'_> {
    fn default() -> Self {
        Self::new()
    }
}

/// The board's connection to the server: Ethernet, TCP, TLS, MQTT.
pub struct Link<'s> {
    _storage: &'s mut Storage<'s>,
    connected: bool,
}

impl<'s> Link<'s> {
    /// Ethernet up, static IPv4 (`live::net`), nothing sent yet.
    pub fn new(storage: &'s mut Storage<'s>, _p: &Provision<'s>) -> Result<Self, NetError> {
        let _ = Link {
            _storage: storage,
            connected: false,
        };
        Err(NetError::Phy)
    }

    /// TCP to `p.server_ip:port`, TLS 1.3 (client certificate, server certificate checked
    /// against `p.ca_cert` and `p.server_name`), MQTT 3.1.1 CONNECT (client id = thing, clean
    /// session) until CONNACK.
    pub fn connect(&mut self, _until_ms: u64) -> Result<(), NetError> {
        Err(NetError::Tcp)
    }

    /// Whether the MQTT session is up.
    pub fn is_connected(&self) -> bool {
        self.connected
    }

    /// Subscribes to `topic` with `qos` (0 or 1), waiting for the SUBACK.
    pub fn subscribe(&mut self, _topic: &str, _qos: u8) -> Result<(), NetError> {
        Err(NetError::NotConnected)
    }

    /// Unsubscribes from `topic`, waiting for the UNSUBACK.
    pub fn unsubscribe(&mut self, _topic: &str) -> Result<(), NetError> {
        Err(NetError::NotConnected)
    }

    /// Publishes `payload` to `topic` with `qos` (0 or 1; QoS 1 acknowledgements are counted by
    /// [`Link::poll`] and awaited by [`Link::flush`]).
    pub fn publish(&mut self, _topic: &str, _payload: &[u8], _qos: u8) -> Result<(), NetError> {
        Err(NetError::NotConnected)
    }

    /// Runs the stack until a message arrives (delivered to `on_message`, maybe several) or
    /// `until_ms`; answers pings, counts PUBACKs. `Ok(n)` = messages delivered.
    pub fn poll(
        &mut self,
        _until_ms: u64,
        _on_message: &mut dyn FnMut(&str, &[u8]),
    ) -> Result<usize, NetError> {
        Err(NetError::NotConnected)
    }

    /// Waits (bounded) until every QoS 1 publish is acknowledged.
    pub fn flush(&mut self, _until_ms: u64) -> Result<(), NetError> {
        Err(NetError::NotConnected)
    }

    /// MQTT DISCONNECT, TLS close_notify, TCP close (best effort).
    pub fn close(&mut self) {
        self.connected = false;
    }
}
