//! A shaping TCP proxy on loopback: what a 100 Mbit/s Ethernet link with a given round trip
//! does to a TCP stream, applied to the real device ↔ server connection.
//!
//! # Model
//!
//! Each direction is its own link (full duplex), with three parts:
//!
//! * **Serialisation at the line rate.** Bytes read from the sender are put on the wire one
//!   read at a time; a read of `n` bytes leaves as `⌈n / MSS⌉` TCP segments, each costing its
//!   payload plus [`FRAME_OVERHEAD`] bytes of framing (Ethernet preamble + SFD 8, header 14,
//!   FCS 4, inter-frame gap 12; IPv4 20; TCP 20 + timestamp option 12 = 90 bytes; MSS 1448 for
//!   a 1500-byte MTU). A full segment takes 1538 byte times, so the TCP payload rate of
//!   100 Mbit/s is 12.5 MB/s × 1448/1538 = 11.77 MB/s ([`LinkModel::payload_rate`]): the
//!   ceiling every goodput is compared with. The reverse direction's pure ACKs are not
//!   charged (they travel on the other link).
//! * **Propagation**: each read is delivered one-way delay (RTT/2) after its last byte left.
//! * **A router's queue** in front of the wire, [`LinkModel::queue_bytes`] long (default 100
//!   full frames, 150 KB, 12 ms at 100 Mbit/s). When it is full the proxy stops reading, so
//!   the sender waits in its socket buffer: TCP over loopback cannot lose bytes for us, and a
//!   byte-stream proxy dropping bytes would only trigger TCP retransmission or break TLS.
//!   Message loss is injected at the server instead (see the `link` module).
//! * **Bursts** (optional, [`LinkModel::burst`]): what would arrive is held and delivered at
//!   the next multiple of the burst period, as a cellular scheduler or a Wi-Fi access point in
//!   power save delivers frames: the same rate and no loss, but blocks come in clumps with
//!   pauses of up to the period in between (issue #23's bursty link). Reordering cannot be
//!   shaped here (TLS records cannot be reordered on the wire): the service reorders its
//!   answers instead (`ferrota_server::faults::ReorderConfig`).
//!
//! The endpoints' own TCP runs over loopback (no loss, microsecond round trips), so TCP's
//! congestion control plays no part: the figures are those of the application protocol
//! (MQTT, TLS, the agent's schedule) over an ideal, uncongested link of that rate and delay.
//! Delivery can be late (the timers have millisecond granularity, the machine is shared), never
//! early: a byte never arrives before its serialisation plus the one-way delay.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Framing bytes per TCP segment on Ethernet: preamble + SFD 8, MAC header 14, FCS 4,
/// inter-frame gap 12, IPv4 header 20, TCP header 20 with the timestamp option 12.
pub const FRAME_OVERHEAD: u32 = 8 + 14 + 4 + 12 + 20 + 20 + 12;
/// TCP payload per segment at a 1500-byte MTU with timestamps (1500 − 20 − 32).
pub const MSS: u32 = 1448;
/// Largest read forwarded as one unit (store and forward of at most this much).
const READ_MAX: usize = 32 * 1024;

/// One direction's link: rate, delay, queue.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinkModel {
    /// Line rate, bits per second.
    pub rate_bps: u64,
    /// One-way propagation delay (half the round trip).
    pub one_way: Duration,
    /// TCP payload per segment.
    pub mss: u32,
    /// Framing bytes per segment.
    pub overhead: u32,
    /// Bytes the queue in front of the wire holds before the proxy stops reading.
    pub queue_bytes: u64,
    /// Burst period: deliveries wait for the next multiple of it since the connection
    /// started. Zero: none (every read is delivered when it arrives).
    pub burst: Duration,
}

/// Why a link model or proxy could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ShaperError {
    /// A model parameter is out of range.
    #[error("link model: {0}")]
    Model(&'static str),
    /// Binding the proxy's listener.
    #[error("proxy listener: {0}")]
    Io(#[from] std::io::Error),
}

impl LinkModel {
    /// 100 Mbit/s Ethernet (the T2G kit's RMII port) with this round trip.
    pub fn ethernet_100m(rtt: Duration) -> LinkModel {
        LinkModel {
            rate_bps: 100_000_000,
            one_way: rtt / 2,
            mss: MSS,
            overhead: FRAME_OVERHEAD,
            queue_bytes: 100 * u64::from(MSS + FRAME_OVERHEAD),
            burst: Duration::ZERO,
        }
    }

    /// When something that arrives at `at` is delivered: `at`, or with a burst period the next
    /// multiple of it after `epoch`.
    pub fn delivery(&self, epoch: Instant, at: Instant) -> Instant {
        if self.burst.is_zero() {
            return at;
        }
        let since = at.saturating_duration_since(epoch).as_nanos();
        let period = self.burst.as_nanos();
        let slots = since.div_ceil(period);
        epoch + Duration::from_nanos(u64::try_from(slots * period).unwrap_or(u64::MAX))
    }

    /// Checks the parameters (a zero rate would never deliver anything).
    pub fn validate(&self) -> Result<(), ShaperError> {
        if self.rate_bps == 0 {
            return Err(ShaperError::Model("the rate must be above 0 bit/s"));
        }
        if self.mss == 0 {
            return Err(ShaperError::Model("the MSS must be above 0 bytes"));
        }
        if self.queue_bytes < u64::from(self.mss + self.overhead) {
            return Err(ShaperError::Model("the queue must hold at least one frame"));
        }
        if self.one_way > Duration::from_secs(60) {
            return Err(ShaperError::Model("a one-way delay above 60 s"));
        }
        if self.burst > Duration::from_secs(10) {
            return Err(ShaperError::Model("a burst period above 10 s"));
        }
        Ok(())
    }

    /// Bytes on the wire for one read of `payload` bytes.
    pub fn wire_bytes(&self, payload: usize) -> u64 {
        let p = payload as u64;
        p + p.div_ceil(u64::from(self.mss)) * u64::from(self.overhead)
    }

    /// Time to serialise `bytes` wire bytes.
    pub fn byte_time(&self, bytes: u64) -> Duration {
        Duration::from_nanos(
            u64::try_from(u128::from(bytes) * 8 * 1_000_000_000 / u128::from(self.rate_bps))
                .unwrap_or(u64::MAX),
        )
    }

    /// The link's TCP payload rate in bytes per second with full segments: the ceiling of
    /// any goodput over it.
    pub fn payload_rate(&self) -> f64 {
        self.rate_bps as f64 / 8.0 * f64::from(self.mss) / f64::from(self.mss + self.overhead)
    }
}

/// Bytes forwarded by a proxy, per direction.
#[derive(Debug, Default)]
pub struct ProxyStats {
    /// Client → upstream.
    pub up: AtomicU64,
    /// Upstream → client.
    pub down: AtomicU64,
}

/// A running proxy; it stops when dropped.
pub struct Proxy {
    /// The proxy's port on 127.0.0.1.
    pub port: u16,
    /// Bytes forwarded.
    pub stats: Arc<ProxyStats>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Proxy {
    /// Listens on `127.0.0.1:0` and forwards every connection to `upstream` through `model`
    /// (both directions).
    pub async fn start(model: LinkModel, upstream: SocketAddr) -> Result<Proxy, ShaperError> {
        model.validate()?;
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let stats = Arc::new(ProxyStats::default());
        let st = stats.clone();
        let task = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            while let Ok((client, _)) = listener.accept().await {
                let st = st.clone();
                conns.spawn(async move {
                    let Ok(server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let _ = client.set_nodelay(true);
                    let _ = server.set_nodelay(true);
                    let (cr, cw) = client.into_split();
                    let (sr, sw) = server.into_split();
                    let up = shape(cr, sw, model, st.clone(), true);
                    let down = shape(sr, cw, model, st, false);
                    let _ = tokio::join!(up, down);
                });
            }
        });
        Ok(Proxy { port, stats, task })
    }
}

/// One direction: read, queue, serialise, delay, write.
async fn shape(
    mut rd: tokio::net::tcp::OwnedReadHalf,
    mut wr: tokio::net::tcp::OwnedWriteHalf,
    m: LinkModel,
    stats: Arc<ProxyStats>,
    up: bool,
) {
    let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let writer = tokio::spawn(async move {
        while let Some((at, buf)) = rx.recv().await {
            tokio::time::sleep_until(at).await;
            if wr.write_all(&buf).await.is_err() {
                return;
            }
        }
        let _ = wr.shutdown().await;
    });
    let queue_time = m.byte_time(m.queue_bytes);
    // When the wire is free again (everything read so far serialised).
    let mut link_free = Instant::now();
    let epoch = link_free;
    let mut buf = vec![0u8; READ_MAX];
    loop {
        // The queue holds what is not yet on the wire: wait until a frame fits.
        let backlog = link_free.saturating_duration_since(Instant::now());
        if backlog > queue_time {
            tokio::time::sleep_until(link_free - queue_time).await;
        }
        let n = match rd.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let counter = if up { &stats.up } else { &stats.down };
        counter.fetch_add(n as u64, Ordering::Relaxed);
        let start = link_free.max(Instant::now());
        link_free = start + m.byte_time(m.wire_bytes(n));
        let at = m.delivery(epoch, link_free + m.one_way);
        if tx.send((at, buf[..n].to_vec())).is_err() {
            break;
        }
    }
    drop(tx);
    let _ = writer.await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ethernet_payload_rate_counts_framing() {
        let m = LinkModel::ethernet_100m(Duration::from_millis(50));
        assert_eq!(FRAME_OVERHEAD, 90);
        assert_eq!(m.wire_bytes(1448), 1538);
        assert_eq!(m.wire_bytes(1449), 1449 + 180);
        assert_eq!(m.wire_bytes(0), 0);
        assert!(
            (m.payload_rate() - 11_768_530.6).abs() < 1.0,
            "{}",
            m.payload_rate()
        );
        assert_eq!(m.byte_time(12_500_000), Duration::from_secs(1));
        assert_eq!(m.one_way, Duration::from_millis(25));
    }

    #[test]
    fn bad_models_are_refused() {
        let ok = LinkModel::ethernet_100m(Duration::from_millis(2));
        assert!(ok.validate().is_ok());
        for (bad, what) in [
            (LinkModel { rate_bps: 0, ..ok }, "rate"),
            (LinkModel { mss: 0, ..ok }, "MSS"),
            (
                LinkModel {
                    queue_bytes: 10,
                    ..ok
                },
                "queue",
            ),
            (
                LinkModel {
                    one_way: Duration::from_secs(61),
                    ..ok
                },
                "delay",
            ),
            (
                LinkModel {
                    burst: Duration::from_secs(11),
                    ..ok
                },
                "burst",
            ),
        ] {
            let e = bad.validate().expect_err(what).to_string();
            assert!(e.contains(what), "{e}");
        }
    }

    #[test]
    fn bursts_deliver_at_the_next_period_never_earlier() {
        let m = LinkModel {
            burst: Duration::from_millis(20),
            ..LinkModel::ethernet_100m(Duration::from_millis(50))
        };
        let e = Instant::now();
        let ms = |x| e + Duration::from_millis(x);
        assert_eq!(m.delivery(e, ms(0)), ms(0));
        assert_eq!(m.delivery(e, ms(1)), ms(20));
        assert_eq!(m.delivery(e, ms(20)), ms(20));
        assert_eq!(m.delivery(e, ms(39)), ms(40));
        let plain = LinkModel::ethernet_100m(Duration::from_millis(50));
        assert_eq!(plain.delivery(e, ms(39)), ms(39));
    }

    /// Lower bounds only: the machine is shared, so nothing is asserted about how late bytes
    /// may be, only that none is early.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn never_early_never_faster_than_the_rate() {
        let sink = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = sink.local_addr().expect("addr");
        let model = LinkModel {
            rate_bps: 10_000_000,
            one_way: Duration::from_millis(30),
            ..LinkModel::ethernet_100m(Duration::ZERO)
        };
        let proxy = Proxy::start(model, addr).await.expect("proxy");
        const TOTAL: usize = 200_000;
        let reader = tokio::spawn(async move {
            let (mut s, _) = sink.accept().await.expect("accept");
            let mut buf = vec![0u8; 65536];
            let (mut got, mut first) = (0usize, None);
            while got < TOTAL {
                let n = s.read(&mut buf).await.expect("read");
                assert!(n > 0, "closed after {got} bytes");
                first.get_or_insert_with(Instant::now);
                got += n;
            }
            (first.expect("some bytes"), Instant::now(), got)
        });
        let mut c = TcpStream::connect(("127.0.0.1", proxy.port))
            .await
            .expect("connect");
        let t0 = Instant::now();
        c.write_all(&vec![0x5A; TOTAL]).await.expect("write");
        let (first, last, got) = reader.await.expect("reader");
        assert_eq!(got, TOTAL);
        assert!(
            first - t0 >= model.one_way,
            "first byte after {:?}",
            first - t0
        );
        // All of it serialised at 10 Mbit/s (payload alone: 160 ms) plus the delay.
        let least = model.one_way + model.byte_time(TOTAL as u64);
        assert!(last - t0 >= least, "{:?} < {least:?}", last - t0);
        assert_eq!(proxy.stats.up.load(Ordering::Relaxed), TOTAL as u64);
    }
}
