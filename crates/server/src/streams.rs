//! MQTT-based file delivery (spec §3): GetStream (`get/cbor`, `get/json`) and DescribeStream
//! (`describe/cbor`, `describe/json`) on `$aws/things/<thing>/streams/<stream>/…`.
//!
//! * Blocks are those [`StreamRequest::blocks_to_send`] yields: the set bits of the bitmap from
//!   offset `o` (or `o, o+1, …` without a bitmap), inside the file, ascending, at most `n` and at
//!   most 128 KB — each requested block exactly once per request, never an unrequested one
//!   (§4.9 hazard 1).
//! * Each block is read from the content-addressed file with a positioned read of that block
//!   only, encoded with [`DataBlock::encode`] (definite-length map `c f l i p`) and published on
//!   `…/data/cbor` to the subscribers of that topic (QoS as subscribed, at most 1).
//! * Errors go to `…/rejected/<encoding>` as `{"o","m","c"?}` and reach only clients subscribed
//!   to it (§1.3 recommendation, §4.9 hazard 2): never on a data topic.
//! * A firmware file is checked against its SHA-256 when opened and every block when read
//!   ([`crate::store::blobs`]): wrong bytes are never served. A damaged or missing file ends the
//!   request with `ResourceNotFound` (the official library and Ferrota's agent fail the job at
//!   once on it, instead of retrying into a ~5 minute momentum abort: nothing the device can do
//!   makes the file whole), is logged at error level naming the OTA update, stream and file,
//!   and is recorded as the OTA update's `errorInfo` (`ferrota ota describe`). Blocks of the
//!   same request read before the damage was found were checked and are correct. Decision:
//!   the server does not cancel the job itself; the operator, told, restores the file (served
//!   again at once, re-checked) or cancels the update.
//! * JSON variant: request `{"c"?,"s"?,"f","l","o"?,"n"?,"b"?}` with `b` a hex string
//!   (`0x` prefix optional), blocks `{"c"?,"f","l","i","p"}` with `p` base64.
//!
//! # Fault injection
//!
//! Not here: [`crate::faults::FaultyOutbound`] wraps the services' [`Outbound`](crate::context::Outbound)
//! in the bench and the lab, so the production path has no fault code.

use std::sync::Arc;

use bytes::Bytes;
use ferrota_proto::stream::{StreamDescriptionOut, StreamErrorCode, StreamFileOut};
use ferrota_proto::topic::{Encoding, StreamOp, Topic};
use ferrota_proto::{DataBlock, StreamRejection, StreamRequest};
use rumqttc::QoS;

use crate::context::Services;
pub use crate::faults::{FaultConfig, Faults};
use crate::store::{ErrorInfo, StoreError, StoreResult, StreamRecord};

async fn load(b: &Services, stream: &str) -> StoreResult<Option<Arc<StreamRecord>>> {
    b.stream(stream).await
}

fn reject(
    b: &Services,
    thing: &str,
    stream: &str,
    enc: Encoding,
    code: StreamErrorCode,
    msg: &str,
    token: Option<&str>,
) {
    tracing::info!(
        thing,
        stream,
        code = code.as_str(),
        msg,
        "stream request rejected"
    );
    let topic = Topic::stream(thing, stream, StreamOp::Rejected, enc).to_string();
    let body = match StreamRejection::new(code, msg, token).to_vec(enc) {
        Ok(body) => body,
        Err(e) => {
            tracing::error!(error = %e, "encoding a stream rejection failed");
            return;
        }
    };
    b.publish(&topic, Bytes::from(body), QoS::AtLeastOnce);
}

/// A firmware file of `stream` was found damaged or missing: log it, and record it on every OTA
/// update that streams it (once: a record already there is kept, so a fleet's retries cost no
/// writes).
async fn damaged(
    b: &Services,
    thing: &str,
    stream: &str,
    file_id: u32,
    blob: &str,
    missing: bool,
    what: &str,
) {
    let otas = match b.store.list_ota().await {
        Ok(v) => v,
        Err(e) => {
            tracing::error!(error = %e, "listing OTA updates failed");
            Vec::new()
        }
    };
    let mut names = Vec::new();
    for o in otas.iter().filter(|o| o.stream_id == stream) {
        names.push(o.ota_update_id.clone());
        if o.error_info.is_some() {
            continue;
        }
        let info = ErrorInfo {
            code: if missing {
                "FirmwareFileMissing"
            } else {
                "FirmwareFileDamaged"
            }
            .into(),
            message: format!(
                "file {file_id} of stream {stream} (firmware/{blob}) is {}: {what}; devices are \
                 refused it (ResourceNotFound). Upload the same file again to restore it, or \
                 cancel the update",
                if missing { "missing" } else { "damaged" }
            ),
        };
        if let Err(e) = b.store.set_ota_error(&o.ota_update_id, &info).await {
            tracing::error!(error = %e, ota = %o.ota_update_id, "recording errorInfo failed");
        }
    }
    tracing::error!(
        ota = %names.join(","),
        stream,
        file_id,
        blob,
        thing,
        what,
        "firmware file damaged or missing: not served"
    );
}

/// An owned GetStream request decoded from JSON.
struct JsonRequest {
    c: Option<String>,
    s: Option<u32>,
    f: u32,
    l: u32,
    o: Option<u32>,
    n: Option<u32>,
    b: Option<Vec<u8>>,
}

fn json_request(payload: &[u8]) -> Result<JsonRequest, (StreamErrorCode, &'static str)> {
    let v: serde_json::Value =
        serde_json::from_slice(payload).map_err(|_| (StreamErrorCode::InvalidJson, "not JSON"))?;
    let o = v
        .as_object()
        .ok_or((StreamErrorCode::InvalidJson, "not a JSON object"))?;
    let num = |k: &str| -> Result<Option<u32>, (StreamErrorCode, &'static str)> {
        match o.get(k) {
            None => Ok(None),
            Some(x) => x
                .as_u64()
                .and_then(|x| u32::try_from(x).ok())
                .map(Some)
                .ok_or((StreamErrorCode::InvalidRequest, "a number is out of range")),
        }
    };
    let c = match o.get("c") {
        None => None,
        Some(serde_json::Value::String(s)) => Some(s.clone()),
        Some(_) => return Err((StreamErrorCode::InvalidRequest, "c must be a string")),
    };
    let b = match o.get("b") {
        None => None,
        Some(serde_json::Value::String(s)) => {
            let h = s.strip_prefix("0x").unwrap_or(s);
            Some(hex::decode(h).map_err(|_| (StreamErrorCode::InvalidRequest, "b must be hex"))?)
        }
        Some(_) => return Err((StreamErrorCode::InvalidRequest, "b must be a hex string")),
    };
    Ok(JsonRequest {
        c,
        s: num("s")?,
        f: num("f")?.ok_or((StreamErrorCode::InvalidRequest, "f is required"))?,
        l: num("l")?.ok_or((StreamErrorCode::InvalidRequest, "l is required"))?,
        o: num("o")?,
        n: num("n")?,
        b,
    })
}

/// Handles a GetStream or DescribeStream request for `thing`.
pub async fn handle(
    b: &Services,
    thing: &str,
    stream: &str,
    op: StreamOp,
    enc: Encoding,
    payload: &[u8],
) -> StoreResult<()> {
    if op == StreamOp::Describe {
        return describe(b, thing, stream, enc, payload).await;
    }
    let owned;
    let req = match enc {
        Encoding::Cbor => match StreamRequest::decode(payload) {
            Ok(r) => r,
            Err(e) => {
                reject(
                    b,
                    thing,
                    stream,
                    enc,
                    StreamErrorCode::InvalidCbor,
                    &format!("{e}"),
                    None,
                );
                return Ok(());
            }
        },
        Encoding::Json => match json_request(payload) {
            Ok(r) => {
                owned = r;
                StreamRequest {
                    client_token: owned.c.as_deref(),
                    stream_version: owned.s,
                    file_id: owned.f,
                    block_size: owned.l,
                    offset: owned.o,
                    bitmap: owned.b.as_deref(),
                    num_blocks: owned.n,
                }
            }
            Err((code, msg)) => {
                reject(b, thing, stream, enc, code, msg, None);
                return Ok(());
            }
        },
    };
    let token = req.client_token;
    if let Err(code) = req.validate() {
        reject(
            b,
            thing,
            stream,
            enc,
            code,
            "request out of bounds",
            token.filter(|t| t.len() <= 64),
        );
        return Ok(());
    }
    let Some(rec) = load(b, stream).await? else {
        reject(
            b,
            thing,
            stream,
            enc,
            StreamErrorCode::ResourceNotFound,
            "no such stream",
            token,
        );
        return Ok(());
    };
    if req.stream_version.is_some_and(|v| v != rec.version) {
        reject(
            b,
            thing,
            stream,
            enc,
            StreamErrorCode::VersionMismatch,
            "stream version mismatch",
            token,
        );
        return Ok(());
    }
    let Some(file) = rec
        .files
        .iter()
        .find(|f| u32::from(f.file_id) == req.file_id)
    else {
        reject(
            b,
            thing,
            stream,
            enc,
            StreamErrorCode::ResourceNotFound,
            "no such file in the stream",
            token,
        );
        return Ok(());
    };
    let blob = match b.blobs.open(&file.blob).await {
        Ok(x) => x,
        Err(e @ (StoreError::NotFound(_) | StoreError::Damaged(_))) => {
            let missing = matches!(e, StoreError::NotFound(_));
            damaged(
                b,
                thing,
                stream,
                req.file_id,
                &file.blob,
                missing,
                &e.to_string(),
            )
            .await;
            reject(
                b,
                thing,
                stream,
                enc,
                StreamErrorCode::ResourceNotFound,
                "the file is damaged or missing on the server",
                token,
            );
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    let size = u32::try_from(blob.len()).unwrap_or(u32::MAX);
    let topic = Topic::stream(thing, stream, StreamOp::Data, enc).to_string();
    let l = req.block_size;
    let mut scratch = vec![0u8; l as usize];
    for i in req.blocks_to_send(size) {
        let off = u64::from(i) * u64::from(l);
        let len = (u64::from(size) - off).min(u64::from(l)) as usize;
        if let Err(e) = blob.read_at(off, &mut scratch[..len]).await {
            // Damaged, truncated, or gone from under an open reader (an object deleted from
            // the bucket: `NotFound`): the file cannot be served. Any other error (the S3
            // server unreachable) is transient: no block is sent, the device asks again.
            if !matches!(
                e.kind(),
                std::io::ErrorKind::InvalidData
                    | std::io::ErrorKind::UnexpectedEof
                    | std::io::ErrorKind::NotFound
            ) {
                return Err(e.into());
            }
            b.blobs.forget(&file.blob);
            let missing = e.kind() == std::io::ErrorKind::NotFound;
            let what = format!("block {i}: {e}");
            damaged(b, thing, stream, req.file_id, &file.blob, missing, &what).await;
            reject(
                b,
                thing,
                stream,
                enc,
                StreamErrorCode::ResourceNotFound,
                "the file is damaged on the server",
                token,
            );
            return Ok(());
        }
        let block = DataBlock::new(token, req.file_id, i, &scratch[..len]);
        let body = block
            .to_vec(enc)
            .map_err(|_| StoreError::Corrupt("block encoding".into()))?;
        b.publish(&topic, Bytes::from(body), QoS::AtLeastOnce);
        b.metrics.stream_block_sent(len);
    }
    Ok(())
}

async fn describe(
    b: &Services,
    thing: &str,
    stream: &str,
    enc: Encoding,
    payload: &[u8],
) -> StoreResult<()> {
    // Request: `{"c"?}` in either encoding; an unreadable body is read as no token.
    let token: Option<String> = match enc {
        Encoding::Json => serde_json::from_slice::<serde_json::Value>(payload)
            .ok()
            .and_then(|v| v.get("c").and_then(|c| c.as_str()).map(str::to_string)),
        Encoding::Cbor => {
            let mut d = minicbor::Decoder::new(payload);
            let mut t = None;
            if let Ok(Some(n)) = d.map() {
                for _ in 0..n {
                    match d.str() {
                        Ok("c") => t = d.str().ok().map(str::to_string),
                        Ok(_) => {
                            let _ = d.skip();
                        }
                        Err(_) => break,
                    }
                }
            }
            t
        }
    };
    let token = token.filter(|t| t.len() <= 64);
    let Some(rec) = load(b, stream).await? else {
        reject(
            b,
            thing,
            stream,
            enc,
            StreamErrorCode::ResourceNotFound,
            "no such stream",
            token.as_deref(),
        );
        return Ok(());
    };
    let topic = Topic::stream(thing, stream, StreamOp::Description, enc).to_string();
    let files: Vec<StreamFileOut> = rec
        .files
        .iter()
        .map(|f| StreamFileOut {
            file_id: f.file_id,
            size: f.size,
        })
        .collect();
    let reply = StreamDescriptionOut {
        client_token: token.as_deref(),
        version: rec.version,
        description: &rec.description,
        files: &files,
    };
    let body = match reply.to_vec(enc) {
        Ok(body) => body,
        Err(e) => {
            tracing::error!(error = %e, "encoding a stream description failed");
            return Ok(());
        }
    };
    b.publish(&topic, Bytes::from(body), QoS::AtLeastOnce);
    Ok(())
}

#[cfg(test)]
mod wire {
    //! The stream replies ferrota-proto now writes are the bytes this module wrote with
    //! serde_json and minicbor before (issue 15): the old code, kept here as the reference.
    use base64::Engine as _;
    use ferrota_proto::stream::{StreamDescriptionOut, StreamErrorCode, StreamFileOut};
    use ferrota_proto::topic::Encoding;
    use ferrota_proto::{DataBlock, StreamRejection};

    /// Texts that exercise JSON escaping: quotes, backslash, the short escapes, other control
    /// characters (`\u00XX`), DEL, non-ASCII and an emoji.
    const TEXTS: &[&str] = &[
        "",
        "rdy",
        "a\"b\\c/d",
        "\n\r\t\u{8}\u{c}",
        "\u{0}\u{1f}\u{7f}",
        "é中🙂",
    ];

    fn old_reject_json(code: StreamErrorCode, msg: &str, token: Option<&str>) -> Vec<u8> {
        let mut m = serde_json::Map::new();
        m.insert("o".into(), code.as_str().into());
        m.insert("m".into(), msg.into());
        if let Some(t) = token {
            m.insert("c".into(), t.into());
        }
        serde_json::to_vec(&m).unwrap()
    }

    fn old_block_json(token: Option<&str>, file_id: u32, i: u32, data: &[u8]) -> Vec<u8> {
        let mut m = serde_json::Map::new();
        if let Some(t) = token {
            m.insert("c".into(), t.into());
        }
        m.insert("f".into(), file_id.into());
        m.insert("l".into(), (data.len() as u64).into());
        m.insert("i".into(), i.into());
        m.insert(
            "p".into(),
            base64::engine::general_purpose::STANDARD
                .encode(data)
                .into(),
        );
        serde_json::to_vec(&m).unwrap()
    }

    fn old_describe(
        enc: Encoding,
        token: Option<&str>,
        version: u32,
        description: &str,
        files: &[(u8, u64)],
    ) -> Vec<u8> {
        match enc {
            Encoding::Json => {
                let files: Vec<serde_json::Value> = files
                    .iter()
                    .map(|(f, z)| serde_json::json!({"f": f, "z": z}))
                    .collect();
                let mut m = serde_json::Map::new();
                if let Some(t) = token {
                    m.insert("c".into(), t.into());
                }
                m.insert("s".into(), version.into());
                m.insert("d".into(), description.into());
                m.insert("r".into(), files.into());
                serde_json::to_vec(&m).unwrap()
            }
            Encoding::Cbor => {
                let mut e = minicbor::Encoder::new(Vec::new());
                e.map(3 + u64::from(token.is_some())).unwrap();
                if let Some(t) = token {
                    e.str("c").unwrap().str(t).unwrap();
                }
                e.str("s").unwrap().u32(version).unwrap();
                e.str("d").unwrap().str(description).unwrap();
                e.str("r").unwrap().array(files.len() as u64).unwrap();
                for (f, z) in files {
                    e.map(2).unwrap().str("f").unwrap().u8(*f).unwrap();
                    e.str("z").unwrap().u64(*z).unwrap();
                }
                e.into_writer()
            }
        }
    }

    fn tokens() -> impl Iterator<Item = Option<&'static str>> {
        std::iter::once(None).chain(TEXTS.iter().map(|t| Some(*t)))
    }

    #[test]
    fn rejections_are_the_bytes_serde_json_wrote() {
        for code in [
            StreamErrorCode::InvalidRequest,
            StreamErrorCode::ResourceNotFound,
            StreamErrorCode::BlockSizeOutOfBounds,
        ] {
            for msg in TEXTS {
                for token in tokens() {
                    let new = StreamRejection::new(code, msg, token)
                        .to_vec(Encoding::Json)
                        .unwrap();
                    assert_eq!(
                        String::from_utf8(new).unwrap(),
                        String::from_utf8(old_reject_json(code, msg, token)).unwrap()
                    );
                }
            }
        }
    }

    #[test]
    fn json_blocks_are_the_bytes_serde_json_wrote() {
        let data: Vec<u8> = (0..=255u8).cycle().take(4096 + 7).collect();
        for token in tokens() {
            for (f, i, len) in [
                (0, 0, 0),
                (1, 3, 1),
                (7, 1000, 2),
                (255, u32::MAX, 4096 + 7),
            ] {
                let d = &data[..len];
                let new = DataBlock::new(token, f, i, d)
                    .to_vec(Encoding::Json)
                    .unwrap();
                assert_eq!(
                    new,
                    old_block_json(token, f, i, d),
                    "{token:?} {f} {i} {len}"
                );
            }
        }
    }

    #[test]
    fn descriptions_are_the_bytes_written_before_in_both_encodings() {
        let file_sets: [&[(u8, u64)]; 3] = [&[], &[(0, 1_048_576)], &[(0, 0), (255, u64::MAX)]];
        for enc in [Encoding::Json, Encoding::Cbor] {
            for token in tokens() {
                for d in TEXTS {
                    for files in file_sets {
                        for version in [0, 1, u32::MAX] {
                            let out: Vec<StreamFileOut> = files
                                .iter()
                                .map(|&(file_id, size)| StreamFileOut { file_id, size })
                                .collect();
                            let new = StreamDescriptionOut {
                                client_token: token,
                                version,
                                description: d,
                                files: &out,
                            }
                            .to_vec(enc)
                            .unwrap();
                            assert_eq!(new, old_describe(enc, token, version, d, files));
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drops(f: &Faults, n: usize) -> Vec<bool> {
        (0..n).map(|_| f.drop_next()).collect()
    }

    #[test]
    fn off_by_default_drops_nothing() {
        let f = Faults::default();
        assert!(!drops(&f, 10_000).contains(&true));
        f.configure(&FaultConfig::default()).expect("valid");
        assert!(!drops(&f, 10_000).contains(&true));
        assert_eq!(f.dropped(), 0);
    }

    #[test]
    fn drops_the_configured_fraction_repeatably() {
        let cfg = FaultConfig {
            stream_drop: 0.01,
            seed: 7,
        };
        let (a, b) = (Faults::default(), Faults::default());
        a.configure(&cfg).expect("valid");
        b.configure(&cfg).expect("valid");
        let (da, db) = (drops(&a, 100_000), drops(&b, 100_000));
        assert_eq!(da, db, "same seed, same drops");
        let n = da.iter().filter(|d| **d).count();
        // 1% of 100,000 is 1,000; the standard deviation is ~31.
        assert!((850..=1150).contains(&n), "{n} dropped");
        assert_eq!(a.dropped(), n as u64);
        let c = Faults::default();
        c.configure(&FaultConfig { seed: 8, ..cfg }).expect("valid");
        assert_ne!(drops(&c, 100_000), da, "another seed, other drops");
    }

    #[test]
    fn all_or_nothing_and_bad_fractions() {
        let f = Faults::default();
        f.configure(&FaultConfig {
            stream_drop: 1.0,
            seed: 0,
        })
        .expect("valid");
        assert!(drops(&f, 1000).iter().all(|d| *d));
        for bad in [-0.1, 1.5, f64::NAN] {
            let e = f
                .configure(&FaultConfig {
                    stream_drop: bad,
                    seed: 0,
                })
                .expect_err("refused");
            assert!(e.contains("stream_drop"), "{e}");
        }
    }
}
