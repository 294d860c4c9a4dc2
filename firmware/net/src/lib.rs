//! The board's network for the live OTA agent (issue #21): LAN9118 Ethernet on QEMU's
//! `mps2-an500`, TCP/IPv4, TLS 1.3 with the thing's client certificate, MQTT 3.1.1 — no heap,
//! every buffer in a [`Storage`], every call synchronous and bounded in time.
//!
//! # Layers and the crates chosen
//!
//! | layer | crate | why |
//! |---|---|---|
//! | Ethernet | [`lan9118`] (ours) | QEMU models the chip's PIO FIFOs; ~0.5 KB of code, polling |
//! | IPv4, ARP, TCP | `smoltcp` 0.14 (`medium-ethernet`, `proto-ipv4`, `socket-tcp` only) | the no_std TCP/IP stack of the Rust embedded world (embassy-net is built on it), actively maintained, no heap; static address, no DHCP/DNS/ICMP sockets compiled in |
//! | TLS 1.3 | `embedded-tls` 0.19 (no default features) | the maintained no_std, no-alloc TLS 1.3 client (drogue-iot; Factbird's `mqttrust` builds on it) with client certificates through its `CryptoProvider`; RustCrypto underneath (AES-GCM, SHA-256, HKDF, P-256 ECDH/ECDSA); the server check is ours (`tls`: pinned CA, serverAuth, DNS name), not its `rustpki` verifier (19.6 KB of flash and about 24 KB more stack; see `tls`) nor `webpki` (ring: C and assembly, `alloc`) |
//! | MQTT 3.1.1 | `mqttrs` 0.4 (codec, `default-features = false`) + the session here | see below |
//!
//! **MQTT.** `rust-mqtt` 0.6 was evaluated first: its `v3` feature is declared but empty
//! ("v3: Unused"; 3.1.1 is on its roadmap) and its CONNECT always carries protocol level 5,
//! which our server (rumqttc's 3.1.1 codec) refuses with return code 1 — it cannot talk to
//! `ferrota serve`. Factbird's `mqttrust` 1.0 does speak 3.1.1 (feature `mqttv3`) and is
//! maintained, but it is an Embassy design: a background `MqttStack::run` task, pub/sub
//! channels per subscription, `embassy-time` with a time driver, `bon`/`itertools`/
//! `futures-util`; driving it under the contract's synchronous, deadline-bounded [`Link`]
//! would mean a second task joined into every call and cancelling its futures at deadlines.
//! So: a codec plus ~300 lines of session here (packet ids, SUBACK/UNSUBACK waits, PUBACK
//! counting, keep-alive pings, QoS 1 acknowledgements after delivery). `mqttrs` is the
//! smallest no_std 3.1.1 codec on crates.io, but it is unmaintained (last release 2021) and
//! its decoders index without bounds checks: `mqtt::Inbound::parse` frames each packet and
//! checks each type's minimum length before handing it over (tests cover the cases that
//! would panic).
//!
//! # Costs
//!
//! Measured in the live application (`firmware/live`, opt-level s, LTO) by
//! `scripts/firmware-check.sh`, whose report splits its flash by `llvm-nm --print-size` (code LTO
//! inlined elsewhere counts where it landed, so a row moves by a few KB between builds): TCP/IP
//! (smoltcp and this crate's driver and TCP glue) about 15 KB, TLS (embedded-tls and the server
//! check) about 25 KB, MQTT (the mqttrs codec and the packet framing) 2 to 5 KB, while the
//! session ([`Link`]) counts with the application; the crypto both TLS and the agent use is
//! counted apart (about 60 KB, with two P-256 versions, below).
//!
//! RAM: [`Storage`] is 51,824 bytes (on the application's stack; `Storage::new` is `const`, so
//! a caller may make it a static): TLS read buffer [`TLS_RX`] (a whole 16 KB record: rustls
//! ignores max_fragment_length), TLS write [`TLS_TX`], TCP windows [`TCP_RX`]/[`TCP_TX`], MQTT
//! in/out [`MQTT_RX`]/[`MQTT_TX`] (5 KB payloads with their topics), the two Ethernet frames,
//! smoltcp's interface and socket, the TLS provider. [`Link`] is 1,464 bytes in the caller's
//! frame (the TLS connection state). No heap.
//!
//! Time, under `-icount shift=0`: the TLS handshake is about 1.03 M busy SysTick ticks, 41 M
//! instructions, mostly P-256 (ECDHE key and shared secret, the client's signature, the two
//! ECDSA verifications: the leaf by the CA, CertificateVerify). Idle, the stack costs ~780
//! instructions per millisecond (the SysTick wake-up and one smoltcp poll).
//!
//! Two P-256 implementations end up in a firmware that also links ferrota-image: embedded-tls
//! is on p256 0.13 / sha2 0.10, ferrota-image on p256 0.14 / sha2 0.11 (~20 KB more flash than
//! one version would take, until embedded-tls moves to the new RustCrypto releases).
//!
//! # Time and the deadline discipline
//!
//! Every wait polls the interface and sleeps with `ferrota_fw_board::clock::idle` (WFI until the next 1 ms
//! SysTick; [`Link::new`] starts the clock if the caller has not). A deadline may only cut a
//! read between TLS records (see `tcp`), so [`Link::poll`] returns on time without ever losing
//! part of a record; inside a record, or on a write, [`STALL_MS`] without progress ends
//! the session.
//!
//! # Randomness
//!
//! ChaCha20 seeded by SHA-256 over the provisioning seed (secret, fresh per provisioning: on
//! the T2G the TRNG) and emulated-time readings (the LAN9118's free-running counter and the
//! SysTick count when the server's SYN-ACK arrived), so two boots of one provisioning do not
//! replay the same ClientHello randoms and ECDHE keys. Under `-icount` the readings still
//! differ between boots: the virtual clock runs in real time while the CPU sleeps.
//!
//! # One session per storage
//!
//! smoltcp's socket set and embedded-tls's connection borrow their buffers for their whole
//! life and there is no heap to give them new ones, so a [`Link`] carries one TLS session:
//! after [`Link::close`] or a failure once TLS started, [`Link::connect`] answers
//! [`NetError::Spent`]; a new session needs a new [`Storage`] (or the board's reset, which is
//! what the live firmware does). A TCP connection that fails before TLS is retried inside
//! `connect` until its deadline.

#![cfg_attr(not(test), no_std)]
#![warn(missing_docs)]

pub mod lan9118;
mod mqtt;
mod tcp;
mod tls;

use core::cell::RefCell;
use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicBool, Ordering};

use embedded_io::{ErrorKind, Write as _};
use embedded_tls::blocking::{TlsConfig, TlsConnection, TlsContext, TlsError};
use ferrota_qemu_harness::live::net;
use ferrota_qemu_harness::provision::Provision;
use p256::ecdsa::SigningKey;
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use sha2::{Digest, Sha256};
use smoltcp::iface::{Config, Interface, SocketSet, SocketStorage};
use smoltcp::socket::tcp::{Socket, SocketBuffer, State};
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress, IpCidr, Ipv4Address};

#[cfg(target_os = "none")]
pub(crate) use ferrota_fw_board::clock;

use lan9118::Lan9118;
use mqtt::Inbound;
pub use tcp::STALL_MS;
use tcp::{Core, Framing, Io};
use tls::{Provider, ServerVerifier, Suite};

/// TLS record read buffer: one whole record (16,384 + 256 bytes of expansion) and its header.
pub const TLS_RX: usize = 16_640;
/// TLS record write buffer (longer writes are split into several records).
pub const TLS_TX: usize = 4096;
/// TCP receive window. Below the LAN9118 RX FIFO (10,560 bytes in QEMU): a full window of
/// frames always fits, so QEMU never drops one while the board is busy.
pub const TCP_RX: usize = 8192;
/// TCP send buffer.
pub const TCP_TX: usize = 4096;
/// MQTT inbound buffer: the largest packet the server may send (a 5 KB payload, its topic).
pub const MQTT_RX: usize = 8192;
/// MQTT outbound buffer: the largest packet the board sends.
pub const MQTT_TX: usize = 6144;
/// QoS 1 publishes in flight at most (publish waits for a PUBACK beyond).
pub const IN_FLIGHT: usize = 8;
/// How long subscribe/unsubscribe wait for their acknowledgement.
pub const ACK_MS: u64 = 10_000;
/// How long one SYN (and smoltcp's retransmissions of it) may wait for an answer before
/// `connect` tries again from another local port. Under `-icount` the first port of every boot
/// is the same (nothing random has happened yet), and QEMU's user-mode stack may still hold
/// the previous boot's connection on it, silently dropping the new SYN.
const SYN_MS: u64 = 1_000;
/// How long close waits for the TCP connection to finish.
const CLOSE_MS: u64 = 2_000;

/// What [`Link::poll`] hands each message to: topic, payload.
type OnMessage<'f> = dyn FnMut(&str, &[u8]) + 'f;

/// Why a network operation failed (`Copy`, no strings: [`NetError::name`] for a report line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetError {
    /// The Ethernet controller is missing, did not come up, or another link drives it.
    Phy,
    /// The provisioning block's key or certificates are unusable.
    Provision,
    /// The deadline passed (or the connection stalled: then the session is over).
    Timeout,
    /// The TCP connection failed or was closed by the peer.
    Tcp,
    /// The TLS handshake or a record failed (includes a server certificate that does not check).
    Tls,
    /// The server refused: CONNACK return code not 0, or a SUBACK failure code.
    Refused,
    /// A malformed or unexpected MQTT packet.
    Mqtt,
    /// Not connected (call [`Link::connect`] first, or the session ended).
    NotConnected,
    /// A topic or payload does not fit the buffers, or too many acknowledgements are pending.
    TooLarge,
    /// This link's one TLS session is used up (see the crate docs): new storage, or a reset.
    Spent,
}

impl NetError {
    /// A short lowercase name for report lines (`error net <name>`).
    pub fn name(self) -> &'static str {
        match self {
            NetError::Phy => "phy",
            NetError::Provision => "provision",
            NetError::Timeout => "timeout",
            NetError::Tcp => "tcp",
            NetError::Tls => "tls",
            NetError::Refused => "refused",
            NetError::Mqtt => "mqtt",
            NetError::NotConnected => "not-connected",
            NetError::TooLarge => "too-large",
            NetError::Spent => "spent",
        }
    }
}

/// Every buffer of the network stack, so a caller can place it (a `static` or its stack).
///
/// The lifetime is that of the [`Link`] built on it: smoltcp's socket set and the TLS
/// connection borrow these buffers without a heap, so the storage holds them for the link's
/// whole life (`Link::new(&'s mut Storage<'s>, ..)`; a `static` is a `Storage<'static>`).
/// One storage serves one link: a new session after [`Link::close`] (or a failed
/// [`Link::connect`]) needs a new storage, or a reset.
pub struct Storage<'s> {
    frames: [lan9118::Frame; 2],
    // Written once by `Link::new` (`MaybeUninit::write`): uninitialised here, so a `static`
    // storage stays all zeros and undefined bytes and lands in .bss, not 50 KB of .data.
    sockets: MaybeUninit<[SocketStorage<'s>; 1]>,
    tcp_rx: [u8; TCP_RX],
    tcp_tx: [u8; TCP_TX],
    core: MaybeUninit<RefCell<Core<'s>>>,
    // The TLS provider (the thing's key, the random generator, the server's key and the
    // transcript kept between Certificate and CertificateVerify): here rather than in the
    // caller's stack frame.
    provider: MaybeUninit<Provider<'s>>,
    tls_rx: [u8; TLS_RX],
    tls_tx: [u8; TLS_TX],
    mqtt_rx: [u8; MQTT_RX],
    mqtt_tx: [u8; MQTT_TX],
}

impl Storage<'_> {
    /// Empty buffers.
    pub const fn new() -> Self {
        Storage {
            frames: [[0; lan9118::FRAME]; 2],
            sockets: MaybeUninit::uninit(),
            tcp_rx: [0; TCP_RX],
            tcp_tx: [0; TCP_TX],
            core: MaybeUninit::uninit(),
            provider: MaybeUninit::uninit(),
            tls_rx: [0; TLS_RX],
            tls_tx: [0; TLS_TX],
            mqtt_rx: [0; MQTT_RX],
            mqtt_tx: [0; MQTT_TX],
        }
    }
}

impl Default for Storage<'_> {
    fn default() -> Self {
        Self::new()
    }
}

/// Figures of the last [`Link::connect`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Figures {
    /// Busy SysTick ticks (40 instructions each under `-icount shift=0`) of the TLS handshake.
    pub handshake_busy_ticks: u64,
    /// Its duration in milliseconds of emulated time.
    pub handshake_ms: u64,
    /// Milliseconds from the TCP SYN to the CONNACK.
    pub connect_ms: u64,
    /// QoS 1 publishes acknowledged so far.
    pub acked: u32,
    /// PINGRESPs received so far (keep-alive round trips).
    pub pings: u32,
    /// QoS 0 PUBLISHes dropped because the buffer was full of messages kept during a wait.
    pub dropped: u32,
}

/// Whether a [`Link`] drives the board's one LAN9118.
static CHIP_TAKEN: AtomicBool = AtomicBool::new(false);

/// The claim on the LAN9118 a [`Link`] holds for its life: a second link at the same time is
/// refused ([`NetError::Phy`]) instead of two drivers programming one chip.
struct ChipClaim;

impl ChipClaim {
    fn take() -> Option<ChipClaim> {
        (!CHIP_TAKEN.swap(true, Ordering::Acquire)).then_some(ChipClaim)
    }
}

impl Drop for ChipClaim {
    fn drop(&mut self) {
        CHIP_TAKEN.store(false, Ordering::Release);
    }
}

/// The board's connection to the server: Ethernet, TCP, TLS, MQTT.
pub struct Link<'s> {
    _chip: ChipClaim,
    core: &'s RefCell<Core<'s>>,
    tls: Option<TlsConnection<'s, Io<'s>, Suite>>,
    tls_bufs: Option<(&'s mut [u8], &'s mut [u8])>,
    provider: &'s mut Provider<'s>,
    rx: &'s mut [u8],
    rx_len: usize,
    tx: &'s mut [u8],
    thing: &'s str,
    server_name: &'s str,
    server: ([u8; 4], u16),
    keep_alive: u16,
    seed: [u8; 32],
    connected: bool,
    next_id: u16,
    pending: [u16; IN_FLIGHT],
    pending_len: usize,
    awaiting: Option<u16>,
    ack_ok: Option<bool>,
    connack: Option<u8>,
    last_tx_ms: u64,
    ping_sent: Option<u64>,
    figures: Figures,
}

/// The random generator for TLS: ChaCha20 keyed by SHA-256 over the provisioning seed and
/// `salt` (emulated-time readings).
fn rng(seed: &[u8; 32], salt: &[u64]) -> ChaCha20Rng {
    let mut h = Sha256::new();
    h.update(b"ferrota-fw-net rng");
    h.update(seed);
    for s in salt {
        h.update(s.to_le_bytes());
    }
    ChaCha20Rng::from_seed(h.finalize().into())
}

fn with_core<'s, R>(
    core: &RefCell<Core<'s>>,
    f: impl FnOnce(&mut Core<'s>) -> R,
) -> Result<R, NetError> {
    let mut core = core.try_borrow_mut().map_err(|_| NetError::NotConnected)?;
    Ok(f(&mut core))
}

fn tls_error(e: TlsError) -> NetError {
    match e {
        TlsError::Io(ErrorKind::TimedOut | ErrorKind::BrokenPipe) => NetError::Timeout,
        TlsError::Io(_) | TlsError::IoError | TlsError::ConnectionClosed => NetError::Tcp,
        _ => NetError::Tls,
    }
}

impl<'s> Link<'s> {
    /// Ethernet up, static IPv4 (`live::net`), nothing sent yet. Starts the board's clock if it is
    /// not running.
    pub fn new(storage: &'s mut Storage<'s>, p: &Provision<'s>) -> Result<Self, NetError> {
        if !clock::running() {
            clock::start();
        }
        let Storage {
            frames: [rx_frame, tx_frame],
            sockets,
            tcp_rx,
            tcp_tx,
            core,
            provider,
            tls_rx,
            tls_tx,
            mqtt_rx,
            mqtt_tx,
        } = storage;
        let chip = ChipClaim::take().ok_or(NetError::Phy)?;
        // SAFETY: the board's LAN9118 window: MMIO, no Rust memory behind it; `chip` makes this
        // link its only driver while it lives.
        let mut lan = unsafe { Lan9118::new(lan9118::BASE, rx_frame, tx_frame) };
        lan.init(net::MAC).map_err(|_| NetError::Phy)?;
        let key = SigningKey::from_slice(p.client_key).map_err(|_| NetError::Provision)?;
        if p.ca_cert.is_empty() || p.client_cert.is_empty() || p.server_name.is_empty() {
            return Err(NetError::Provision);
        }
        let mut random = rng(&p.seed, &[u64::from(lan.free_run()), clock::ticks()]);

        let mut config = Config::new(HardwareAddress::Ethernet(EthernetAddress(net::MAC)));
        config.random_seed = random.next_u64();
        let mut iface = Interface::new(config, &mut lan, tcp::now());
        iface.update_ip_addrs(|addrs| {
            let _ = addrs.push(IpCidr::new(
                IpAddress::Ipv4(Ipv4Address::from(net::GUEST)),
                net::PREFIX,
            ));
        });
        iface
            .routes_mut()
            .add_default_ipv4_route(Ipv4Address::from(net::GATEWAY))
            .map_err(|_| NetError::Phy)?;
        let mut set = SocketSet::new(&mut sockets.write([SocketStorage::EMPTY])[..]);
        let handle = set.add(Socket::new(
            SocketBuffer::new(&mut tcp_rx[..]),
            SocketBuffer::new(&mut tcp_tx[..]),
        ));
        let core: &'s RefCell<Core<'s>> = core.write(RefCell::new(Core {
            dev: lan,
            iface,
            sockets: set,
            tcp: handle,
            framing: Framing::default(),
            deadline: 0,
        }));
        let provider = provider.write(Provider {
            rng: random,
            verifier: ServerVerifier::new(p.ca_cert, p.server_name),
            key,
            cert: p.client_cert,
        });
        Ok(Link {
            core,
            tls: None,
            tls_bufs: Some((&mut tls_rx[..], &mut tls_tx[..])),
            provider,
            rx: &mut mqtt_rx[..],
            rx_len: 0,
            tx: &mut mqtt_tx[..],
            thing: p.thing,
            server_name: p.server_name,
            server: (p.server_ip, p.server_port),
            keep_alive: p.keep_alive,
            seed: p.seed,
            connected: false,
            next_id: 0,
            pending: [0; IN_FLIGHT],
            pending_len: 0,
            awaiting: None,
            ack_ok: None,
            connack: None,
            last_tx_ms: 0,
            ping_sent: None,
            figures: Figures::default(),
            _chip: chip,
        })
    }

    fn with_core<R>(&self, f: impl FnOnce(&mut Core<'s>) -> R) -> Result<R, NetError> {
        with_core(self.core, f)
    }

    /// TCP to `p.server_ip:port`, retried until it is established or `until_ms`.
    fn tcp_connect(&mut self, until_ms: u64) -> Result<(), NetError> {
        let (ip, port) = self.server;
        loop {
            // Mixed with the clock: after a first SYN (and its ARP) the reading depends on when
            // QEMU's answers came in real time, so a retry's port differs between boots.
            let random = self.provider.rng.next_u32() ^ clock::ticks() as u32;
            let local = 49_152 + (random % 16_384) as u16;
            self.with_core(|c| {
                let Core {
                    iface,
                    sockets,
                    tcp,
                    ..
                } = c;
                let socket = sockets.get_mut::<Socket>(*tcp);
                socket.abort();
                socket
                    .connect(
                        iface.context(),
                        (IpAddress::Ipv4(Ipv4Address::from(ip)), port),
                        local,
                    )
                    .map_err(|_| NetError::Tcp)
            })??;
            let give_up = clock::now_ms() + SYN_MS;
            let state = loop {
                let state = self.with_core(|c| {
                    c.pump();
                    let s = c.socket().state();
                    if s != State::Established && s != State::Closed {
                        c.wait();
                    }
                    s
                })?;
                if state == State::Established || state == State::Closed {
                    break state;
                }
                if clock::now_ms() >= until_ms {
                    return Err(NetError::Timeout);
                }
                if clock::now_ms() >= give_up {
                    break State::Closed;
                }
            };
            if state == State::Established {
                return Ok(());
            }
            // Refused (RST), or no answer: a short pause, then a new SYN from another port.
            let retry = clock::now_ms() + 200;
            while clock::now_ms() < retry.min(until_ms) {
                clock::idle();
            }
            if clock::now_ms() >= until_ms {
                return Err(NetError::Timeout);
            }
        }
    }

    /// TCP to `p.server_ip:port`, TLS 1.3 (client certificate, server certificate checked
    /// against `p.ca_cert` and `p.server_name`), MQTT 3.1.1 CONNECT (client id = thing, clean
    /// session) until CONNACK.
    pub fn connect(&mut self, until_ms: u64) -> Result<(), NetError> {
        if self.connected {
            return Ok(());
        }
        if self.tls_bufs.is_none() {
            return Err(NetError::Spent);
        }
        let start = clock::now_ms();
        self.tcp_connect(until_ms)?;
        // Reseed with the moment the SYN-ACK came in (see the crate docs).
        let salt = self.with_core(|c| {
            c.framing = Framing::default();
            c.deadline = until_ms;
            [u64::from(c.dev.free_run()), clock::ticks()]
        })?;
        self.provider.rng = rng(&self.seed, &salt);

        let (rx, tx) = self.tls_bufs.take().ok_or(NetError::Spent)?;
        let tls = self.tls.insert(TlsConnection::new(Io(self.core), rx, tx));
        let config = TlsConfig::new().with_server_name(self.server_name);
        let (busy0, t0) = (clock::busy_ticks(), clock::now_ms());
        let opened = tls.open(TlsContext::new(&config, &mut *self.provider));
        self.figures.handshake_busy_ticks = clock::busy_ticks() - busy0;
        self.figures.handshake_ms = clock::now_ms() - t0;
        if let Err(e) = opened {
            return Err(self.fail(tls_error(e)));
        }
        // The handshake may end without the server ever proving itself (see
        // `ServerVerifier::verified`): no MQTT byte goes to a peer that did not.
        if !self.provider.verifier.verified() {
            return Err(self.fail(NetError::Tls));
        }

        self.rx_len = 0;
        self.connack = None;
        let n = match mqtt::connect(self.thing, self.keep_alive, self.tx) {
            Ok(n) => n,
            Err(e) => return Err(self.fail(e)),
        };
        self.connected = true;
        self.send(n)?;
        match self.wait_for(|l| l.connack.is_some(), until_ms) {
            Ok(()) => {}
            Err(e) => return Err(self.fail(e)),
        }
        if self.connack != Some(0) {
            return Err(self.fail(NetError::Refused));
        }
        self.figures.connect_ms = clock::now_ms() - start;
        Ok(())
    }

    /// Whether the MQTT session is up.
    pub fn is_connected(&self) -> bool {
        self.connected
    }

    /// Figures of the last connect, and the PUBACK count.
    pub fn figures(&self) -> Figures {
        self.figures
    }

    /// QoS 1 publishes not acknowledged yet.
    pub fn in_flight(&self) -> usize {
        self.pending_len
    }

    /// Subscribes to `topic` with `qos` (0 or 1), waiting (at most [`ACK_MS`]) for the SUBACK;
    /// messages that arrive meanwhile are kept for [`Link::poll`].
    pub fn subscribe(&mut self, topic: &str, qos: u8) -> Result<(), NetError> {
        self.check()?;
        let id = self.next_id();
        let n = mqtt::subscribe(topic, qos, id, self.tx)?;
        self.acknowledged(id, n)
    }

    /// Unsubscribes from `topic`, waiting (at most [`ACK_MS`]) for the UNSUBACK.
    pub fn unsubscribe(&mut self, topic: &str) -> Result<(), NetError> {
        self.check()?;
        let id = self.next_id();
        let n = mqtt::unsubscribe(topic, id, self.tx)?;
        self.acknowledged(id, n)
    }

    fn acknowledged(&mut self, id: u16, n: usize) -> Result<(), NetError> {
        self.awaiting = Some(id);
        self.ack_ok = None;
        self.send(n)?;
        let until = clock::now_ms() + ACK_MS;
        self.wait_for(|l| l.ack_ok.is_some(), until)?;
        match self.ack_ok {
            Some(true) => Ok(()),
            _ => Err(NetError::Refused),
        }
    }

    /// Publishes `payload` to `topic` with `qos` (0 or 1; QoS 1 acknowledgements are counted by
    /// [`Link::poll`] and awaited by [`Link::flush`]; with [`IN_FLIGHT`] unacknowledged, this
    /// waits for one first).
    pub fn publish(&mut self, topic: &str, payload: &[u8], qos: u8) -> Result<(), NetError> {
        self.check()?;
        if qos > 1 {
            return Err(NetError::Mqtt);
        }
        if qos == 1 && self.pending_len == IN_FLIGHT {
            let until = clock::now_ms() + tcp::STALL_MS;
            self.wait_for(|l| l.pending_len < IN_FLIGHT, until)?;
        }
        let id = (qos == 1).then(|| self.next_id());
        let n = mqtt::publish(topic, payload, id, self.tx)?;
        self.send(n)?;
        if let Some(id) = id {
            self.pending[self.pending_len] = id;
            self.pending_len += 1;
        }
        Ok(())
    }

    /// Runs the stack until a message arrives (delivered to `on_message`, maybe several) or
    /// `until_ms`; answers pings, counts PUBACKs. `Ok(n)` = messages delivered.
    pub fn poll(
        &mut self,
        until_ms: u64,
        on_message: &mut dyn FnMut(&str, &[u8]),
    ) -> Result<usize, NetError> {
        self.check()?;
        loop {
            let n = self.process(Some(&mut *on_message))?;
            if n > 0 {
                return Ok(n);
            }
            self.keep_alive()?;
            if clock::now_ms() >= until_ms {
                return Ok(0);
            }
            self.fill(until_ms.min(self.ping_due()))?;
        }
    }

    /// Waits (bounded) until every QoS 1 publish is acknowledged.
    pub fn flush(&mut self, until_ms: u64) -> Result<(), NetError> {
        self.check()?;
        self.wait_for(|l| l.pending_len == 0, until_ms)
    }

    /// MQTT DISCONNECT, TLS close_notify, TCP close (best effort, at most ~2 s: until the
    /// server acknowledged our FIN).
    pub fn close(&mut self) {
        if self.connected
            && let Ok(n) = mqtt::disconnect(self.tx)
        {
            let _ = self.send(n);
        }
        self.connected = false;
        if let Some(tls) = self.tls.take() {
            let _ = tls.close();
        }
        let until = clock::now_ms() + CLOSE_MS;
        let _ = self.with_core(|c| {
            c.socket().close();
            // Until our FIN is acknowledged (the server's may never come through QEMU's
            // forwarding), or the bound; a connection still half-open then is reset.
            loop {
                c.pump();
                let state = c.socket().state();
                if matches!(state, State::FinWait2 | State::TimeWait | State::Closed) {
                    break;
                }
                if clock::now_ms() >= until {
                    c.socket().abort();
                    c.pump();
                    break;
                }
                c.wait();
            }
        });
    }

    fn check(&self) -> Result<(), NetError> {
        if self.connected {
            Ok(())
        } else {
            Err(NetError::NotConnected)
        }
    }

    /// Ends the session after a fatal error: the connection is reset, the error passed on.
    fn fail(&mut self, e: NetError) -> NetError {
        self.connected = false;
        self.tls = None;
        let _ = self.with_core(|c| {
            c.socket().abort();
            c.pump();
        });
        e
    }

    fn next_id(&mut self) -> u16 {
        loop {
            self.next_id = self.next_id.wrapping_add(1).max(1);
            if !self.pending[..self.pending_len].contains(&self.next_id) {
                return self.next_id;
            }
        }
    }

    /// Writes the first `n` bytes of the MQTT out buffer as TLS records.
    fn send(&mut self, n: usize) -> Result<(), NetError> {
        let tls = self.tls.as_mut().ok_or(NetError::NotConnected)?;
        let sent = tls.write_all(&self.tx[..n]).and_then(|()| tls.flush());
        match sent {
            Ok(()) => {
                self.last_tx_ms = clock::now_ms();
                Ok(())
            }
            Err(e) => Err(self.fail(tls_error(e))),
        }
    }

    /// When the next PINGREQ is due, or its PINGRESP overdue.
    fn ping_due(&self) -> u64 {
        let ka = u64::from(self.keep_alive) * 1000;
        match (ka, self.ping_sent) {
            (0, _) => u64::MAX,
            (_, Some(sent)) => sent + ka,
            (_, None) => self.last_tx_ms + ka / 2,
        }
    }

    /// Sends a PINGREQ after half the keep-alive without sending; a PINGRESP missing for a
    /// whole keep-alive ends the session.
    fn keep_alive(&mut self) -> Result<(), NetError> {
        if self.keep_alive == 0 || clock::now_ms() < self.ping_due() {
            return Ok(());
        }
        if self.ping_sent.is_some() {
            return Err(self.fail(NetError::Timeout));
        }
        let n = mqtt::pingreq(self.tx)?;
        self.send(n)?;
        self.ping_sent = Some(clock::now_ms());
        Ok(())
    }

    /// Runs until `done`, or `until_ms` (then [`NetError::Timeout`], the session goes on).
    fn wait_for(&mut self, done: impl Fn(&Self) -> bool, until_ms: u64) -> Result<(), NetError> {
        loop {
            self.process(None)?;
            if done(self) {
                return Ok(());
            }
            self.keep_alive()?;
            if clock::now_ms() >= until_ms {
                return Err(NetError::Timeout);
            }
            self.fill(until_ms.min(self.ping_due()))?;
        }
    }

    /// Reads decrypted bytes into the MQTT buffer; `Ok(false)` if `deadline` came first.
    fn fill(&mut self, deadline: u64) -> Result<bool, NetError> {
        if self.rx_len == self.rx.len() && !self.drop_undelivered_qos0() {
            return Err(self.fail(NetError::TooLarge));
        }
        self.with_core(|c| c.deadline = deadline)?;
        let tls = self.tls.as_mut().ok_or(NetError::NotConnected)?;
        let read = match tls.read_buffered() {
            Ok(mut data) => Ok(data.pop_into(&mut self.rx[self.rx_len..])),
            Err(e) => Err(e),
        };
        match read {
            Ok(n) => {
                self.rx_len += n;
                Ok(true)
            }
            Err(TlsError::Io(ErrorKind::TimedOut)) => Ok(false),
            Err(e) => Err(self.fail(tls_error(e))),
        }
    }

    /// Makes room in a full MQTT buffer while [`Link::wait_for`] keeps PUBLISHes for the next
    /// poll (a SUBACK, a PUBACK or a flush waited for behind them): the oldest QoS 0 PUBLISH
    /// is dropped, as MQTT allows for "at most once" (the agent asks again for a stream block
    /// it misses, as for one lost on the way), and counted in [`Figures::dropped`]. `false`
    /// if the buffer holds none (a packet larger than the buffer, or QoS 1 messages only).
    fn drop_undelivered_qos0(&mut self) -> bool {
        match mqtt::drop_first_qos0(self.rx, self.rx_len) {
            Some(len) => {
                self.rx_len = len;
                self.figures.dropped += 1;
                true
            }
            None => false,
        }
    }

    /// Handles every whole packet in the MQTT buffer: acknowledgements update the session;
    /// PUBLISHes go to `deliver` (then their PUBACK) or, without one, stay for the next poll.
    fn process(&mut self, mut deliver: Option<&mut OnMessage<'_>>) -> Result<usize, NetError> {
        let mut at = 0;
        let mut delivered = 0;
        loop {
            let len = match mqtt::frame(&self.rx[at..self.rx_len]) {
                Ok(Some(len)) => len,
                Ok(None) => break,
                Err(e) => return Err(self.fail(e)),
            };
            let mut puback = None;
            match Inbound::parse(&self.rx[at..at + len]) {
                Err(e) => return Err(self.fail(e)),
                Ok(Inbound::Publish {
                    topic,
                    payload,
                    ack,
                }) => match deliver.as_mut() {
                    Some(f) => {
                        f(topic, payload);
                        delivered += 1;
                        puback = ack;
                    }
                    None => {
                        at += len;
                        continue;
                    }
                },
                Ok(Inbound::Connack(code)) => self.connack = Some(code),
                Ok(Inbound::Puback(id)) => {
                    if let Some(i) = self.pending[..self.pending_len]
                        .iter()
                        .position(|&p| p == id)
                    {
                        self.pending.copy_within(i + 1..self.pending_len, i);
                        self.pending_len -= 1;
                        self.figures.acked += 1;
                    }
                }
                Ok(Inbound::Suback(id, ok)) => {
                    if self.awaiting == Some(id) {
                        self.awaiting = None;
                        self.ack_ok = Some(ok);
                    }
                }
                Ok(Inbound::Unsuback(id)) => {
                    if self.awaiting == Some(id) {
                        self.awaiting = None;
                        self.ack_ok = Some(true);
                    }
                }
                Ok(Inbound::Pingresp) => {
                    self.ping_sent = None;
                    self.figures.pings += 1;
                }
            }
            self.rx.copy_within(at + len..self.rx_len, at);
            self.rx_len -= len;
            if let Some(id) = puback {
                let n = mqtt::puback(id, self.tx)?;
                self.send(n)?;
            }
        }
        Ok(delivered)
    }
}

/// The host build (unit tests): a clock that never sleeps.
#[cfg(not(target_os = "none"))]
mod clock {
    pub fn running() -> bool {
        true
    }
    pub fn start() {}
    pub fn now_ms() -> u64 {
        0
    }
    pub fn ticks() -> u64 {
        0
    }
    pub fn busy_ticks() -> u64 {
        0
    }
    pub fn idle() {}
}
