//! MQTT 3.1.1 packets: `mqttrs`'s encoder and decoder behind a framing and length check.
//!
//! `mqttrs`' decoders index the buffer they are given without checking it (a PUBACK without
//! its packet id, a PUBLISH whose topic length runs past the packet, a SUBACK with no code:
//! each would panic or read the next packet). [`Inbound::parse`] therefore cuts exactly one
//! packet out of the stream by its fixed header, refuses every type a client must not receive
//! and every length below the type's minimum, and only then decodes.

use mqttrs::{
    Connack, Connect, ConnectReturnCode, Packet, Pid, Protocol, Publish, QoS, QosPid, Subscribe,
    SubscribeReturnCodes, SubscribeTopic, Unsubscribe,
};

use crate::NetError;

/// Longest topic (`mqttrs` keeps SUBSCRIBE topics in 256-byte strings without a heap).
pub const TOPIC_MAX: usize = 256;

/// A packet the server sent, decoded.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Inbound<'a> {
    /// CONNACK with its return code (0 = accepted).
    Connack(u8),
    /// PUBLISH: topic, payload, the packet id to acknowledge for QoS 1.
    Publish {
        topic: &'a str,
        payload: &'a [u8],
        ack: Option<u16>,
    },
    /// PUBACK for our packet id.
    Puback(u16),
    /// SUBACK for our packet id: whether every filter was granted.
    Suback(u16, bool),
    /// UNSUBACK for our packet id.
    Unsuback(u16),
    /// PINGRESP.
    Pingresp,
}

/// Length of the packet at the start of `buf` (fixed header included), once it is all there.
pub(crate) fn frame(buf: &[u8]) -> Result<Option<usize>, NetError> {
    let mut len = 0usize;
    for i in 0..4 {
        let Some(&b) = buf.get(1 + i) else {
            return Ok(None);
        };
        len |= usize::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            let total = 2 + i + len;
            return Ok((buf.len() >= total).then_some(total));
        }
    }
    Err(NetError::Mqtt)
}

/// Removes the oldest whole QoS 0 PUBLISH from `buf[..len]` (the packets after it move up);
/// the new length, or `None` if the buffer holds none. MQTT's "at most once" allows dropping
/// one: the link does it when its buffer is full of messages kept for the next poll.
pub(crate) fn drop_first_qos0(buf: &mut [u8], len: usize) -> Option<usize> {
    let mut at = 0;
    while let Ok(Some(n)) = frame(buf.get(at..len)?) {
        if let Ok(Inbound::Publish { ack: None, .. }) = Inbound::parse(&buf[at..at + n]) {
            buf.copy_within(at + n..len, at);
            return Some(len - n);
        }
        at += n;
    }
    None
}

impl<'a> Inbound<'a> {
    /// Decodes one whole packet (`packet` is exactly what [`frame`] measured).
    pub fn parse(packet: &'a [u8]) -> Result<Self, NetError> {
        let (&first, _) = packet.split_first().ok_or(NetError::Mqtt)?;
        let header = packet.len() - remaining_len(packet)?;
        let body = &packet[header..];
        let ok = match first >> 4 {
            2 | 4 | 11 => body.len() == 2,
            3 => {
                let topic = usize::from(u16::from_be_bytes([
                    *body.first().ok_or(NetError::Mqtt)?,
                    *body.get(1).ok_or(NetError::Mqtt)?,
                ]));
                let pid = if first & 0b0110 != 0 { 2 } else { 0 };
                body.len() >= 2 + topic + pid
            }
            9 => body.len() >= 3,
            13 => body.is_empty(),
            _ => false,
        };
        if !ok {
            return Err(NetError::Mqtt);
        }
        Ok(
            match mqttrs::decode_slice(packet).map_err(|_| NetError::Mqtt)? {
                Some(Packet::Connack(Connack { code, .. })) => Inbound::Connack(code_u8(code)),
                Some(Packet::Publish(Publish {
                    qospid,
                    topic_name,
                    payload,
                    ..
                })) => Inbound::Publish {
                    topic: topic_name,
                    payload,
                    ack: match qospid {
                        QosPid::AtMostOnce => None,
                        QosPid::AtLeastOnce(pid) => Some(pid.get()),
                        // QoS 2 is never granted to this client (it subscribes with 0 or 1).
                        QosPid::ExactlyOnce(_) => return Err(NetError::Mqtt),
                    },
                },
                Some(Packet::Puback(pid)) => Inbound::Puback(pid.get()),
                Some(Packet::Suback(s)) => Inbound::Suback(
                    s.pid.get(),
                    s.return_codes
                        .iter()
                        .all(|c| *c != SubscribeReturnCodes::Failure),
                ),
                Some(Packet::Unsuback(pid)) => Inbound::Unsuback(pid.get()),
                Some(Packet::Pingresp) => Inbound::Pingresp,
                _ => return Err(NetError::Mqtt),
            },
        )
    }
}

/// The remaining length of a framed packet.
fn remaining_len(packet: &[u8]) -> Result<usize, NetError> {
    let total = frame(packet)?.ok_or(NetError::Mqtt)?;
    let header = 1
        + (1..5)
            .find(|&i| packet.get(i).is_some_and(|b| b & 0x80 == 0))
            .ok_or(NetError::Mqtt)?;
    if total != packet.len() {
        return Err(NetError::Mqtt);
    }
    Ok(total - header)
}

fn code_u8(code: ConnectReturnCode) -> u8 {
    match code {
        ConnectReturnCode::Accepted => 0,
        ConnectReturnCode::RefusedProtocolVersion => 1,
        ConnectReturnCode::RefusedIdentifierRejected => 2,
        ConnectReturnCode::ServerUnavailable => 3,
        ConnectReturnCode::BadUsernamePassword => 4,
        ConnectReturnCode::NotAuthorized => 5,
    }
}

fn pid(id: u16) -> Result<Pid, NetError> {
    Pid::try_from(id).map_err(|_| NetError::Mqtt)
}

fn qos(q: u8) -> Result<QoS, NetError> {
    match q {
        0 => Ok(QoS::AtMostOnce),
        1 => Ok(QoS::AtLeastOnce),
        _ => Err(NetError::Mqtt),
    }
}

fn encode(packet: &Packet, out: &mut [u8]) -> Result<usize, NetError> {
    mqttrs::encode_slice(packet, out).map_err(|_| NetError::TooLarge)
}

/// CONNECT: MQTT 3.1.1, clean session, no will, no credentials (the certificate is them).
pub(crate) fn connect(client_id: &str, keep_alive: u16, out: &mut [u8]) -> Result<usize, NetError> {
    encode(
        &Packet::Connect(Connect {
            protocol: Protocol::MQTT311,
            keep_alive,
            client_id,
            clean_session: true,
            last_will: None,
            username: None,
            password: None,
        }),
        out,
    )
}

/// PUBLISH with QoS 0 (`id` None) or 1.
pub(crate) fn publish(
    topic: &str,
    payload: &[u8],
    id: Option<u16>,
    out: &mut [u8],
) -> Result<usize, NetError> {
    let qospid = match id {
        None => QosPid::AtMostOnce,
        Some(id) => QosPid::AtLeastOnce(pid(id)?),
    };
    encode(
        &Packet::Publish(Publish {
            dup: false,
            qospid,
            retain: false,
            topic_name: topic,
            payload,
        }),
        out,
    )
}

fn topic_string(topic: &str) -> Result<heapless::String<TOPIC_MAX>, NetError> {
    let mut s = heapless::String::new();
    s.push_str(topic).map_err(|_| NetError::TooLarge)?;
    Ok(s)
}

/// SUBSCRIBE to one filter.
pub(crate) fn subscribe(topic: &str, q: u8, id: u16, out: &mut [u8]) -> Result<usize, NetError> {
    let mut topics = heapless::Vec::new();
    topics
        .push(SubscribeTopic {
            topic_path: topic_string(topic)?,
            qos: qos(q)?,
        })
        .map_err(|_| NetError::TooLarge)?;
    encode(&Packet::Subscribe(Subscribe::new(pid(id)?, topics)), out)
}

/// UNSUBSCRIBE from one filter.
pub(crate) fn unsubscribe(topic: &str, id: u16, out: &mut [u8]) -> Result<usize, NetError> {
    let mut topics = heapless::Vec::new();
    topics
        .push(topic_string(topic)?)
        .map_err(|_| NetError::TooLarge)?;
    encode(
        &Packet::Unsubscribe(Unsubscribe::new(pid(id)?, topics)),
        out,
    )
}

/// PUBACK for a QoS 1 PUBLISH the server sent.
pub(crate) fn puback(id: u16, out: &mut [u8]) -> Result<usize, NetError> {
    encode(&Packet::Puback(pid(id)?), out)
}

/// PINGREQ.
pub(crate) fn pingreq(out: &mut [u8]) -> Result<usize, NetError> {
    encode(&Packet::Pingreq, out)
}

/// DISCONNECT.
pub(crate) fn disconnect(out: &mut [u8]) -> Result<usize, NetError> {
    encode(&Packet::Disconnect, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_and_refuses_what_would_make_mqttrs_index_out_of_bounds() {
        assert_eq!(frame(&[0x40]), Ok(None));
        assert_eq!(frame(&[0x40, 2, 0]), Ok(None));
        assert_eq!(frame(&[0x40, 2, 0, 7, 9]), Ok(Some(4)));
        assert_eq!(frame(&[0x30, 0xff, 0xff, 0xff, 0xff]), Err(NetError::Mqtt));
        assert_eq!(Inbound::parse(&[0x40, 2, 0, 7]), Ok(Inbound::Puback(7)));
        assert_eq!(Inbound::parse(&[0x40, 0]), Err(NetError::Mqtt));
        assert_eq!(Inbound::parse(&[0x20, 2, 0, 5]), Ok(Inbound::Connack(5)));
        assert_eq!(Inbound::parse(&[0x90, 2, 0, 1]), Err(NetError::Mqtt));
        assert_eq!(
            Inbound::parse(&[0x90, 3, 0, 1, 0x80]),
            Ok(Inbound::Suback(1, false))
        );
        assert_eq!(Inbound::parse(&[0xd0, 0]), Ok(Inbound::Pingresp));
        // PUBLISH QoS 1 whose topic length leaves no room for the packet id.
        assert_eq!(Inbound::parse(&[0x32, 3, 0, 1, b'a']), Err(NetError::Mqtt));
        assert_eq!(
            Inbound::parse(&[0x32, 6, 0, 1, b'a', 0, 9, b'x']),
            Ok(Inbound::Publish {
                topic: "a",
                payload: b"x",
                ack: Some(9)
            })
        );
        // Topic longer than the packet.
        assert_eq!(Inbound::parse(&[0x30, 3, 0, 9, b'a']), Err(NetError::Mqtt));
        // Types a client never receives.
        assert_eq!(Inbound::parse(&[0x82, 2, 0, 1]), Err(NetError::Mqtt));
        assert_eq!(Inbound::parse(&[0xc0, 0]), Err(NetError::Mqtt));
    }

    #[test]
    fn encodes_what_the_server_expects() {
        let mut b = [0u8; 64];
        let n = publish("t", b"hi", Some(3), &mut b).unwrap();
        assert_eq!(&b[..n], &[0x32, 7, 0, 1, b't', 0, 3, b'h', b'i']);
        let n = subscribe("a/b", 1, 2, &mut b).unwrap();
        assert_eq!(&b[..n], &[0x82, 8, 0, 2, 0, 3, b'a', b'/', b'b', 1]);
        let n = pingreq(&mut b).unwrap();
        assert_eq!(&b[..n], &[0xc0, 0]);
        let n = connect("dev-1", 60, &mut b).unwrap();
        assert_eq!(&b[..9], &[0x10, 17, 0, 4, b'M', b'Q', b'T', b'T', 4]);
        assert_eq!(n, 19);
        assert!(publish("t", &[0; 100], None, &mut b).is_err());
    }

    #[test]
    fn a_full_buffer_gives_up_its_oldest_qos0_publish_only() {
        let qos1 = [0x32, 6, 0, 1, b'a', 0, 9, b'x'];
        let qos0 = [0x30, 4, 0, 1, b'b', b'y'];
        let ack = [0x40, 2, 0, 7];
        let mut buf = [0u8; 32];
        let mut len = 0;
        for p in [&qos1[..], &ack, &qos0, &qos0] {
            buf[len..len + p.len()].copy_from_slice(p);
            len += p.len();
        }
        // The first QoS 0 one goes; the QoS 1 message and the PUBACK before it stay.
        let after = drop_first_qos0(&mut buf, len).expect("one to drop");
        assert_eq!(after, len - qos0.len());
        let mut want = [0u8; 32];
        let mut n = 0;
        for p in [&qos1[..], &ack, &qos0] {
            want[n..n + p.len()].copy_from_slice(p);
            n += p.len();
        }
        assert_eq!(&buf[..after], &want[..n]);
        // Nothing to drop: QoS 1 only, or a packet not whole yet.
        assert_eq!(drop_first_qos0(&mut buf, qos1.len() + ack.len()), None);
        assert_eq!(drop_first_qos0(&mut [0x30, 9, 0, 1], 4), None);
        assert_eq!(
            drop_first_qos0(&mut [0u8; 4], 9),
            None,
            "a length past the buffer"
        );
    }
}
