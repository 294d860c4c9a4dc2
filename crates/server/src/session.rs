//! One MQTT 3.1.1 connection, generic over the byte stream (TLS socket, in-memory pipe, …).
//!
//! Supported: CONNECT (protocol level 4 only; other levels get return code 1), CONNACK codes
//! 0/1/2/5, PUBLISH QoS 0 and 1 (QoS 2 disconnects, as on AWS IoT), PUBACK, SUBSCRIBE with `+`
//! and `#` (QoS 2 is granted as 1), UNSUBSCRIBE, PINGREQ, DISCONNECT, wills (QoS 0/1, sent when
//! the connection ends without DISCONNECT), keep-alive enforced at 1.5 × the client's value,
//! a maximum packet size, an in-flight limit for QoS 1 sent to the client.
//! Not supported (documented choices): persistent sessions — every session is clean and
//! CONNACK says `session_present = 0` even when the client asked `clean_session = 0`;
//! retained messages — the retain flag is ignored; QoS 1 messages not acknowledged when a
//! connection ends are not resent.
//!
//! A connection does everything in one task: it reads and handles packets, and writes the
//! packets queued for it. Handling a PUBLISH may wait for the store (a job update is committed
//! before its PUBACK and its `/accepted`), which back-pressures that client only.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::BytesMut;
use rumqttc::{
    ConnAck, ConnectReturnCode, Packet, PubAck, Publish, QoS, SubAck, SubscribeReasonCode, UnsubAck,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use crate::broker::{Broker, KickReason, Outgoing};
use crate::filter::{valid_filter, valid_topic, within_limits};
use crate::metrics::{Metrics, Packet as Kind};
use crate::services;
use crate::store::CertStatus;
pub use crate::tls::Identity;

/// How a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEnd {
    /// CONNACK refused the client with this return code.
    Refused(u8),
    /// The client sent DISCONNECT.
    Disconnected,
    /// The client closed the connection.
    Closed,
    /// The client broke the protocol or the policy (logged).
    Violation(String),
    /// The keep-alive expired.
    KeepAliveTimeout,
    /// The broker closed it.
    Kicked(KickReason),
    /// An I/O error.
    Io(String),
}

/// Capacity of a connection's read and write buffers while it has nothing big to carry.
pub const IDLE_BUF: usize = 2048;

enum Step {
    Continue,
    End(SessionEnd),
}

/// Serves one connection until it ends.
pub async fn serve_connection<S>(broker: Arc<Broker>, mut io: S, identity: Identity) -> SessionEnd
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let max = broker.limits.max_packet_size;
    let metrics = broker.services.metrics.clone();
    // Small to start: most connections sit idle (a fleet of 10k devices, `ferrota bench
    // fleet`); a buffer grows for the packets that need it and shrinks again below.
    let mut rbuf = BytesMut::with_capacity(IDLE_BUF);
    // CONNECT first, within the timeout.
    let first = tokio::time::timeout(broker.limits.connect_timeout, async {
        loop {
            if let Err(why) = check_fixed_header(&rbuf) {
                return Err(SessionEnd::Violation(why));
            }
            match Packet::read(&mut rbuf, max) {
                Ok(p) => return Ok(p),
                Err(rumqttc::Error::InsufficientBytes(_)) => {}
                Err(rumqttc::Error::InvalidProtocolLevel(_)) => {
                    return Err(SessionEnd::Refused(1));
                }
                Err(e) => return Err(SessionEnd::Violation(format!("bad CONNECT: {e}"))),
            }
            match io.read_buf(&mut rbuf).await {
                Ok(0) => return Err(SessionEnd::Closed),
                Ok(_) => {}
                Err(e) => return Err(SessionEnd::Io(e.to_string())),
            }
        }
    })
    .await;
    let connect = match first {
        Err(_) => return SessionEnd::Violation("no CONNECT in time".into()),
        Ok(Err(SessionEnd::Refused(code))) => {
            let _ = refuse(&mut io, &metrics, ConnectReturnCode::RefusedProtocolVersion).await;
            return SessionEnd::Refused(code);
        }
        Ok(Err(e)) => return e,
        Ok(Ok(Packet::Connect(c))) => {
            metrics.packet_in(Kind::Connect);
            c
        }
        Ok(Ok(p)) => return SessionEnd::Violation(format!("first packet is not CONNECT: {p:?}")),
    };
    if connect.protocol != rumqttc::Protocol::V4 {
        let _ = refuse(&mut io, &metrics, ConnectReturnCode::RefusedProtocolVersion).await;
        return SessionEnd::Refused(1);
    }
    if let Err(code) = authorize_connect(&broker, &identity, &connect).await {
        let _ = refuse(&mut io, &metrics, code).await;
        return SessionEnd::Refused(code as u8);
    }
    let client_id = connect.client_id.clone();
    let will = connect.last_will.clone();
    let (me, mut rx) = broker.register(&client_id, identity.cert_id.as_deref());
    let mut wbuf = BytesMut::with_capacity(IDLE_BUF);
    let _ = Packet::ConnAck(ConnAck::new(ConnectReturnCode::Success, false))
        .write(&mut wbuf, usize::MAX);
    metrics.packet_out(Kind::Connack);
    // Counted open until this function returns.
    let _open = metrics.connection_opened();
    tracing::info!(client = %client_id, "connected");

    let ka = match connect.keep_alive {
        0 => broker.limits.max_keep_alive,
        k => k.min(broker.limits.max_keep_alive),
    };
    let ka = Duration::from_millis(u64::from(ka) * 1500);
    let mut deadline = Instant::now() + ka;
    let mut inflight: HashSet<u16> = HashSet::new();
    let mut next_pkid: u16 = 0;
    let max_inflight = broker.limits.max_inflight.max(1);

    let end = 'outer: loop {
        // Handle every complete packet already buffered (a client may pipeline CONNECT and
        // more in one segment), then write what that produced, then wait.
        loop {
            if let Err(why) = check_fixed_header(&rbuf) {
                break 'outer SessionEnd::Violation(why);
            }
            let p = match Packet::read(&mut rbuf, max) {
                Ok(p) => p,
                Err(rumqttc::Error::InsufficientBytes(_)) => break,
                Err(e) => break 'outer SessionEnd::Violation(format!("malformed packet: {e}")),
            };
            deadline = Instant::now() + ka;
            match handle(
                &broker,
                &client_id,
                &identity.thing,
                me.conn_id,
                p,
                &mut wbuf,
                &mut inflight,
            )
            .await
            {
                Step::Continue => {}
                Step::End(e) => break 'outer e,
            }
        }
        release_idle(&mut rbuf);
        if !wbuf.is_empty() {
            let w = async {
                io.write_all(&wbuf).await?;
                io.flush().await
            };
            // A client that does not read is disconnected by its queue, not waited for forever.
            tokio::select! {
                r = w => if let Err(e) = r { break SessionEnd::Io(e.to_string()) },
                _ = me.kick.notify.notified() => {
                    break SessionEnd::Kicked(me.kick.reason().unwrap_or(KickReason::Shutdown));
                }
                _ = tokio::time::sleep_until(deadline) => break SessionEnd::KeepAliveTimeout,
            }
            wbuf.clear();
            if rx.is_empty() {
                release_idle(&mut wbuf);
            }
        }
        tokio::select! {
            biased;
            _ = me.kick.notify.notified() => {
                break SessionEnd::Kicked(me.kick.reason().unwrap_or(KickReason::Shutdown));
            }
            _ = tokio::time::sleep_until(deadline) => break SessionEnd::KeepAliveTimeout,
            r = io.read_buf(&mut rbuf) => {
                match r {
                    Ok(0) => break SessionEnd::Closed,
                    Ok(_) => {}
                    Err(e) => break SessionEnd::Io(e.to_string()),
                }
                deadline = Instant::now() + ka;
            }
            m = rx.recv(), if inflight.len() < max_inflight => {
                let Some(mut m) = m else { break SessionEnd::Kicked(KickReason::Shutdown) };
                loop {
                    me.queued_bytes.fetch_sub(m.payload.len() + m.topic.len(), Ordering::AcqRel);
                    encode_out(m, &mut wbuf, &mut inflight, &mut next_pkid);
                    metrics.packet_out(Kind::Publish);
                    if inflight.len() >= max_inflight || wbuf.len() > 256 * 1024 {
                        break;
                    }
                    match rx.try_recv() {
                        Ok(n) => m = n,
                        Err(_) => break,
                    }
                }
            }
        }
    };
    broker.unregister(&client_id, me.conn_id);
    // Drain what is still queued so the byte accounting of a taken-over id is not leaked.
    rx.close();
    match &end {
        SessionEnd::Disconnected => tracing::info!(client = %client_id, "disconnected"),
        SessionEnd::Violation(why) => {
            tracing::warn!(client = %client_id, %why, "disconnected for a violation")
        }
        other => tracing::info!(client = %client_id, end = ?other, "connection ended"),
    }
    if end != SessionEnd::Disconnected
        && let Some(w) = will
    {
        let qos = if w.qos == QoS::AtMostOnce {
            QoS::AtMostOnce
        } else {
            QoS::AtLeastOnce
        };
        broker.publish(&w.topic, w.message, qos);
    }
    let _ = io.shutdown().await;
    end
}

async fn refuse<S: AsyncWrite + Unpin>(
    io: &mut S,
    metrics: &Metrics,
    code: ConnectReturnCode,
) -> std::io::Result<()> {
    let mut b = BytesMut::new();
    let _ = Packet::ConnAck(ConnAck::new(code, false)).write(&mut b, usize::MAX);
    metrics.packet_out(Kind::Connack);
    io.write_all(&b).await?;
    io.flush().await?;
    io.shutdown().await
}

/// CONNECT checks: the client id is the certificate's thing name, the thing is registered, the
/// certificate is registered to it and active, and the will topic is allowed.
async fn authorize_connect(
    broker: &Broker,
    id: &Identity,
    c: &rumqttc::Connect,
) -> Result<(), ConnectReturnCode> {
    use ferrota_proto::limits::NameLimits;
    use ferrota_proto::topic::{NameKind, validate_name};
    if c.client_id.is_empty()
        || validate_name(&c.client_id, NameKind::Thing, &NameLimits::AWS).is_err()
    {
        tracing::warn!(client = %c.client_id, "refused: invalid client id");
        return Err(ConnectReturnCode::BadClientId);
    }
    if c.client_id != id.thing {
        tracing::warn!(client = %c.client_id, cert = %id.thing, "refused: client id is not the certificate's thing name");
        return Err(ConnectReturnCode::NotAuthorized);
    }
    match broker.store.thing(&id.thing).await {
        Ok(Some(_)) => {}
        Ok(None) => {
            tracing::warn!(client = %c.client_id, "refused: unknown thing");
            return Err(ConnectReturnCode::NotAuthorized);
        }
        Err(e) => {
            tracing::error!(error = %e, "store failed at CONNECT");
            return Err(ConnectReturnCode::ServiceUnavailable);
        }
    }
    if let Some(cert) = &id.cert_id {
        match broker.store.certificate(cert).await {
            Ok(Some(r)) if r.thing == id.thing && r.status == CertStatus::Active => {}
            Ok(_) => {
                tracing::warn!(client = %c.client_id, "refused: certificate unknown, revoked or not this thing's");
                return Err(ConnectReturnCode::NotAuthorized);
            }
            Err(e) => {
                tracing::error!(error = %e, "store failed at CONNECT");
                return Err(ConnectReturnCode::ServiceUnavailable);
            }
        }
    }
    // A will is published by the broker after the client is gone, to subscribers only. On a
    // `$` topic (MQTT 3.1.1 §4.7.2: for the server's own use; here the Jobs and Streams
    // topics) it would either forge a service message (e.g. `jobs/notify-next`, delivered to
    // the thing's next session as if the Jobs service sent it) or be a service request that no
    // service would execute. So a will on any `$` topic is refused like a publish the policy
    // denies: CONNACK 5 (NotAuthorized), whatever the policy allows.
    if let Some(w) = &c.last_will
        && (!valid_topic(&w.topic)
            || w.topic.starts_with('$')
            || !broker.policy.allows_publish(&id.thing, &w.topic))
    {
        tracing::warn!(client = %c.client_id, topic = %w.topic, "refused: will topic not allowed");
        return Err(ConnectReturnCode::NotAuthorized);
    }
    Ok(())
}

/// Gives back a buffer grown for a big packet once it is empty: idle sessions are most of a
/// fleet, and one 128 KB download used to leave ~160 kB behind per session. Applied to the read
/// buffer when every buffered packet is handled, and to the write buffer when it is written and
/// nothing more is queued, so a download in progress keeps its buffer between blocks only while
/// blocks are queued. A fresh [`IDLE_BUF`] buffer costs one small allocation.
pub fn release_idle(buf: &mut BytesMut) {
    if buf.is_empty() && buf.capacity() > IDLE_BUF {
        *buf = BytesMut::with_capacity(IDLE_BUF);
    }
}

/// MQTT 3.1.1 fixed-header rules that rumqttc's v4 codec does not check, applied to the packet
/// at the start of `buf` (as much of it as has arrived; `Ok` while undecided):
/// - the flags of SUBSCRIBE, UNSUBSCRIBE and PUBREL must be 0b0010, and of every other packet
///   but PUBLISH 0 (§2.2.2: "If invalid flags are received, the receiver MUST close the Network
///   Connection");
/// - PINGREQ and DISCONNECT have no payload: remaining length 0 (§3.12, §3.14);
/// - the reserved bit 0 of CONNECT's connect flags must be 0 (§3.1.2.3).
///
/// A breach is a protocol violation: the connection is closed.
pub fn check_fixed_header(buf: &[u8]) -> Result<(), String> {
    let Some(&b0) = buf.first() else {
        return Ok(());
    };
    let (kind, flags) = (b0 >> 4, b0 & 0x0f);
    let want = match kind {
        3 => return Ok(()), // PUBLISH: dup/QoS/retain, checked by the codec and `handle`
        6 | 8 | 10 => 0b0010,
        _ => 0,
    };
    if flags != want {
        return Err(format!(
            "packet type {kind} with fixed-header flags {flags:#06b} (must be {want:#06b})"
        ));
    }
    if (kind == 12 || kind == 14)
        && let Some(&len) = buf.get(1)
        && len != 0
    {
        return Err(format!("packet type {kind} with a payload"));
    }
    if kind == 1 {
        // Remaining length (1–4 bytes), then the protocol name (u16 length + bytes), the level,
        // the connect flags.
        let mut i = 1;
        while let Some(&b) = buf.get(i) {
            i += 1;
            if b & 0x80 == 0 || i > 4 {
                break;
            }
        }
        if let (Some(&hi), Some(&lo)) = (buf.get(i), buf.get(i + 1)) {
            let name = usize::from(u16::from_be_bytes([hi, lo]));
            if let Some(&cf) = buf.get(i + 2 + name + 1)
                && cf & 1 != 0
            {
                return Err("CONNECT with the reserved flag set".into());
            }
        }
    }
    Ok(())
}

fn encode_out(m: Outgoing, wbuf: &mut BytesMut, inflight: &mut HashSet<u16>, next: &mut u16) {
    let pkid = if m.qos == QoS::AtMostOnce {
        0
    } else {
        loop {
            *next = next.wrapping_add(1);
            if *next != 0 && !inflight.contains(next) {
                break;
            }
        }
        inflight.insert(*next);
        *next
    };
    let p = Publish {
        dup: false,
        qos: m.qos,
        retain: false,
        topic: m.topic,
        pkid,
        payload: m.payload,
    };
    let _ = Packet::Publish(p).write(wbuf, usize::MAX);
}

async fn handle(
    broker: &Arc<Broker>,
    client_id: &str,
    thing: &str,
    conn_id: u64,
    p: Packet,
    wbuf: &mut BytesMut,
    inflight: &mut HashSet<u16>,
) -> Step {
    let metrics = &broker.services.metrics;
    if let Some(k) = kind_of(&p) {
        metrics.packet_in(k);
    }
    match p {
        Packet::Publish(p) => {
            if p.qos == QoS::ExactlyOnce {
                return Step::End(SessionEnd::Violation("QoS 2 is not supported".into()));
            }
            if !valid_topic(&p.topic) {
                return Step::End(SessionEnd::Violation(format!(
                    "invalid topic {:?}",
                    p.topic
                )));
            }
            if !broker.policy.allows_publish(thing, &p.topic) {
                tracing::warn!(client = client_id, topic = %p.topic, "publish denied by policy");
                return Step::End(SessionEnd::Violation(format!(
                    "publish to {} denied",
                    p.topic
                )));
            }
            match services::on_publish(&broker.services, client_id, thing, &p.topic, &p.payload)
                .await
            {
                services::Outcome::Handled => {}
                services::Outcome::NotMine => broker.publish(&p.topic, p.payload.clone(), p.qos),
                services::Outcome::Reserved => {
                    tracing::warn!(client = client_id, topic = %p.topic, "publish to a reserved topic");
                    return Step::End(SessionEnd::Violation(format!(
                        "publish to reserved topic {}",
                        p.topic
                    )));
                }
                services::Outcome::Failed => {
                    // Not acknowledged: the client will retry (QoS 1) on a new connection.
                    return Step::End(SessionEnd::Violation(
                        "internal error handling a request".into(),
                    ));
                }
            }
            if p.qos == QoS::AtLeastOnce {
                let _ = Packet::PubAck(PubAck::new(p.pkid)).write(wbuf, usize::MAX);
                metrics.packet_out(Kind::Puback);
            }
            Step::Continue
        }
        Packet::PubAck(a) => {
            inflight.remove(&a.pkid);
            Step::Continue
        }
        Packet::Subscribe(s) => {
            let l = &broker.limits;
            if s.filters.len() > l.max_filters_per_subscribe {
                return Step::End(SessionEnd::Violation(format!(
                    "{} filters in one SUBSCRIBE (at most {})",
                    s.filters.len(),
                    l.max_filters_per_subscribe
                )));
            }
            let mut codes = Vec::with_capacity(s.filters.len());
            for f in &s.filters {
                if !valid_filter(&f.path) {
                    return Step::End(SessionEnd::Violation(format!(
                        "invalid filter {:?}",
                        f.path
                    )));
                }
                if !broker.policy.allows_subscribe(thing, &f.path) {
                    tracing::warn!(client = client_id, filter = %f.path, "subscribe denied by policy");
                    return Step::End(SessionEnd::Violation(format!(
                        "subscribe to {} denied",
                        f.path
                    )));
                }
            }
            for f in &s.filters {
                let q = if f.qos == QoS::AtMostOnce {
                    QoS::AtMostOnce
                } else {
                    QoS::AtLeastOnce
                };
                let ok = within_limits(&f.path, l.max_filter_len, l.max_filter_slashes)
                    && broker.subscribe(client_id, conn_id, &f.path, q);
                if ok {
                    codes.push(SubscribeReasonCode::Success(q));
                } else {
                    tracing::warn!(client = client_id, filter = %f.path, "subscription refused: over a limit");
                    codes.push(SubscribeReasonCode::Failure);
                }
            }
            let _ = Packet::SubAck(SubAck::new(s.pkid, codes)).write(wbuf, usize::MAX);
            metrics.packet_out(Kind::Suback);
            Step::Continue
        }
        Packet::Unsubscribe(u) => {
            for t in &u.topics {
                broker.unsubscribe(client_id, conn_id, t);
            }
            let _ = Packet::UnsubAck(UnsubAck::new(u.pkid)).write(wbuf, usize::MAX);
            metrics.packet_out(Kind::Unsuback);
            Step::Continue
        }
        Packet::PingReq => {
            let _ = Packet::PingResp.write(wbuf, usize::MAX);
            metrics.packet_out(Kind::Pingresp);
            Step::Continue
        }
        Packet::Disconnect => Step::End(SessionEnd::Disconnected),
        other => Step::End(SessionEnd::Violation(format!(
            "unexpected packet {other:?}"
        ))),
    }
}

/// The metrics label of a packet a client sent; `None` for the types a client never sends
/// under MQTT 3.1.1 as served here (QoS 2 flow, server-to-client packets): those end the
/// session as violations and would only widen the label set.
fn kind_of(p: &Packet) -> Option<Kind> {
    Some(match p {
        Packet::Connect(_) => Kind::Connect,
        Packet::Publish(_) => Kind::Publish,
        Packet::PubAck(_) => Kind::Puback,
        Packet::Subscribe(_) => Kind::Subscribe,
        Packet::Unsubscribe(_) => Kind::Unsubscribe,
        Packet::PingReq => Kind::Pingreq,
        Packet::Disconnect => Kind::Disconnect,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_grown_buffer_is_released_once_empty() {
        let mut b = BytesMut::with_capacity(IDLE_BUF);
        b.extend_from_slice(&[0u8; 160 * 1024]);
        release_idle(&mut b);
        assert!(b.capacity() >= 160 * 1024, "kept while it holds data");
        let _ = b.split_to(100 * 1024);
        b.clear();
        release_idle(&mut b);
        assert_eq!(b.capacity(), IDLE_BUF);
        // An idle-sized buffer is left alone.
        let before = b.as_ptr();
        release_idle(&mut b);
        assert_eq!(b.as_ptr(), before);
    }
}
